"""Semantic dedup (SemDeDup): records whose meaning repeats an earlier record's, in other words.

After exact and MinHash dedup, each kept record's text (its messages' contents, cut at `max_chars`) is embedded
by an embeddings model (the caller's `embed`: the import job sends it to a deployment through the gateway) and
the records are walked in file order: one is dropped when its cosine similarity with an earlier *kept* record
is at least `threshold`, and named a duplicate of the most similar one (the earliest on a tie).

Deterministic for given vectors: the walk is sequential in file order, the vectors are unit-normalized in
float64 and compared in fixed blocks of rows. Cost: the embedding calls dominate (see the import report's
`seconds_embedding`); the comparison is n² dot products of d dimensions (5,000 × 384-d: ~10 GFLOP, well under
a second on 2 cores) in blocks of `BLOCK` rows, so memory stays at BLOCK × n floats.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from appliance.datasets.errors import DatasetError
from appliance.datasets.shapes import Message

Vectors = npt.NDArray[np.float64]
Embed = Callable[[list[str]], Sequence[Sequence[float]]]  # texts -> one vector each, in order
BLOCK = 512
# ~250 word pieces of English: what MiniLM was trained on (256 tokens), well inside the deployment's 512-token
# slots; a longer text is embedded by its beginning.
MAX_CHARS = 1000


@dataclass(frozen=True)
class SemanticOptions:
    embed: Embed
    threshold: float = 0.9
    embedder: str = ""  # what embeds (a deployment's served name), for the report
    max_chars: int = MAX_CHARS

    def check(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise DatasetError(f"semantic dedup threshold {self.threshold} must be above 0 and at most 1")


@dataclass(frozen=True)
class SemanticDuplicate:
    index: int  # of the dropped record, among those compared
    duplicate_of: int  # of the kept record it repeats
    similarity: float  # cosine


class SemanticSummary(BaseModel):
    """How the semantic pass ran, in the import report (the pairs are in `duplicates`, kind "semantic")."""

    threshold: float
    embedder: str
    records_compared: int = 0
    dimensions: int = 0
    texts_cut: int = 0  # texts longer than max_chars, embedded by their beginning
    max_chars: int = MAX_CHARS
    seconds_embedding: float = 0.0
    seconds_comparing: float = 0.0


def unit_rows(vectors: Sequence[Sequence[float]]) -> Vectors:
    """Rows scaled to length 1 (a zero row stays zero: similar to nothing)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2 or not len(matrix):
        raise DatasetError(f"embeddings: expected one vector per text, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Vectors = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def find_duplicates(unit: Vectors, threshold: float, block: int = BLOCK) -> list[SemanticDuplicate]:
    """Walk the rows in order; each row is kept unless its cosine with an earlier kept row is ≥ `threshold`."""
    count = len(unit)
    kept = np.zeros(count, dtype=bool)
    found: list[SemanticDuplicate] = []
    for start in range(0, count, block):
        stop = min(count, start + block)
        sims = unit[start:stop] @ unit[:stop].T  # this block's rows against every row up to its end
        for offset in range(stop - start):
            index = start + offset
            row = sims[offset, :index]
            close = np.flatnonzero(kept[:index] & (row >= threshold))
            if close.size:
                best = int(close[np.argmax(row[close])])  # argmax takes the first of equals: the earliest
                found.append(SemanticDuplicate(index, best, float(row[best])))
            else:
                kept[index] = True
    return found


def semantic_pass(texts: list[list[Message]], options: SemanticOptions) -> tuple[list[SemanticDuplicate],
                                                                                  SemanticSummary]:
    """The semantic duplicates among `texts` (in order) and how the pass ran."""
    options.check()
    summary = SemanticSummary(threshold=options.threshold, embedder=options.embedder, max_chars=options.max_chars)
    if not texts:
        return [], summary
    plain = ["\n".join(m["content"] for m in t) for t in texts]
    summary.texts_cut = sum(len(p) > options.max_chars for p in plain)
    started = time.monotonic()
    vectors = options.embed([p[:options.max_chars] for p in plain])
    summary.seconds_embedding = round(time.monotonic() - started, 3)
    if len(vectors) != len(texts):
        raise DatasetError(f"embeddings: {len(vectors)} vectors for {len(texts)} texts")
    unit = unit_rows(vectors)
    started = time.monotonic()
    found = find_duplicates(unit, options.threshold)
    summary.seconds_comparing = round(time.monotonic() - started, 3)
    summary.records_compared, summary.dimensions = len(texts), int(unit.shape[1])
    return found, summary
