"""From a file's bytes to train/eval records and the report: read, parse by kind (`kinds.py`), validate,
deduplicate (exact and MinHash, then semantic when asked: `semantic.py`), split. Pure (no files written, no
database; the semantic pass calls the embedder it is given), so the store decides what to keep."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from appliance.datasets.dedup import Deduplicator
from appliance.datasets.errors import DatasetError, RecordDefect
from appliance.datasets.formats import NUMBERING, UNITS, read_records
from appliance.datasets.kinds import DEFAULT_KIND, Record, check_kind, parse
from appliance.datasets.report import DuplicateNote, ImportReport, RecordError, TokenStats
from appliance.datasets.semantic import SemanticOptions, semantic_pass
from appliance.datasets.shapes import Message
from appliance.datasets.split import split
from appliance.datasets.validate import ChatTokenizer, TokenCounter


@dataclass(frozen=True)
class Options:
    tokenizer: ChatTokenizer | None = None
    max_seq_length: int | None = None
    eval_fraction: float = 0.1
    seed: int = 0
    near_dup_threshold: float = 0.9
    kind: str = DEFAULT_KIND  # the record kind: "sft", "preference" or "kto" (kinds.py)
    semantic: SemanticOptions | None = None  # SemDeDup after exact and MinHash dedup (semantic.py)

    def check(self) -> None:
        check_kind(self.kind)
        if self.semantic is not None:
            self.semantic.check()
        if not 0.0 <= self.eval_fraction < 1.0:
            raise DatasetError(f"eval fraction {self.eval_fraction} must be at least 0 and below 1")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise DatasetError(f"near-duplicate threshold {self.near_dup_threshold} must be above 0 and at most 1")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise DatasetError(f"max_seq_length {self.max_seq_length} must be positive")


@dataclass(frozen=True)
class Prepared:
    train: list[Record]  # the lines to store (kinds.parse): {"messages": [...]} for SFT
    eval: list[Record]
    report: ImportReport


def prepare(data: bytes, fmt: str, options: Options) -> Prepared:
    """Raises DatasetError only for a file that cannot be read at all; record defects go in the report."""
    options.check()
    unit = UNITS[fmt]
    report = ImportReport(
        format=fmt, kind=options.kind, numbering=NUMBERING[fmt], max_seq_length=options.max_seq_length,
        eval_fraction=options.eval_fraction, seed=options.seed, near_dup_threshold=options.near_dup_threshold,
    )
    counter = TokenCounter(options.tokenizer)
    report.token_counter = counter.label
    dedup = Deduplicator(options.near_dup_threshold, seed=options.seed)
    shapes: Counter[str] = Counter()
    kept: list[Record] = []
    lengths: list[int] = []
    lines: list[int] = []  # of the kept records, and what dedup compares of each (for the semantic pass)
    texts: list[list[Message]] = []
    for raw in read_records(data, fmt):
        report.records_read += 1
        try:
            if raw.error is not None:
                raise RecordDefect(raw.error)
            parsed = parse(options.kind, raw.fields)
            tokens = max(counter.count(conversation) for conversation in parsed.conversations)
            counter.check(tokens, options.max_seq_length)
        except RecordDefect as defect:
            report.add_error(RecordError(unit=unit, line=raw.line, message=str(defect)))
            continue
        report.records_valid += 1
        shapes[parsed.shape] += 1
        verdict = dedup.check(raw.line, parsed.text)
        if verdict is not None:
            report.add_duplicate(DuplicateNote(unit=unit, line=raw.line, duplicate_of=verdict.duplicate_of,
                                               kind=verdict.kind, jaccard=round(verdict.jaccard, 4)))
            continue
        kept.append(parsed.record)
        lengths.append(tokens)
        lines.append(raw.line)
        texts.append(parsed.text)
    if options.semantic is not None:
        kept, lengths = _semantic(kept, lengths, lines, texts, options.semantic, dedup, report, unit)
    report.shapes = dict(sorted(shapes.items()))
    report.token_lengths = _stats(lengths)
    train, evaluation = split(kept, options.eval_fraction, options.seed)
    report.train_count, report.eval_count = len(train), len(evaluation)
    return Prepared(train, evaluation, report)


def _semantic(kept: list[Record], lengths: list[int], lines: list[int], texts: list[list[Message]],
              options: SemanticOptions, dedup: Deduplicator, report: ImportReport, unit: str
              ) -> tuple[list[Record], list[int]]:
    """The records the semantic pass keeps; each dropped one in the report with its pair, cosine and Jaccard."""
    found, report.semantic_dedup = semantic_pass(texts, options)
    dropped = set()
    for pair in found:
        dropped.add(pair.index)
        report.add_duplicate(DuplicateNote(
            unit=unit, line=lines[pair.index], duplicate_of=lines[pair.duplicate_of], kind="semantic",
            jaccard=round(dedup.jaccard_of(lines[pair.index], lines[pair.duplicate_of]), 4),
            similarity=round(pair.similarity, 4)))
    keep = [i for i in range(len(kept)) if i not in dropped]
    return [kept[i] for i in keep], [lengths[i] for i in keep]


def _stats(lengths: list[int]) -> TokenStats | None:
    if not lengths:
        return None
    p50, p90, p99 = np.percentile(np.array(lengths), [50, 90, 99], method="nearest")
    return TokenStats(p50=int(p50), p90=int(p90), p99=int(p99), max=max(lengths))
