"""The vector backend interface, its two implementations' common ground (the search's fusion and scores), and
the choice between them (`BackendSettings`, written by the daemon for its job workers).

A backend keeps, per vector store, each chunk's text, vector and the file's name and attributes, under the
chunk's stable id (`ids.chunk_id`): an upsert of the same chunk replaces it, never adds one. Search is hybrid:
the best `pool` chunks by keyword (BM25) and by vector (cosine KNN), fused by reciprocal rank
(score 1/(60 + rank) summed over the two lists); a chunk's reported `score` is its cosine similarity to the query
(0 to 1), which `score_threshold` compares against. Attribute filters restrict both lists before ranking.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from appliance.retrieval.filters import Filter
from appliance.retrieval.models import Attributes, Hit
from appliance.state.durable import write_atomic

RRF_K = 60
BackendType = Literal["sqlite-vec", "qdrant"]
SETTINGS_FILE = "retrieval-backend.json"


@dataclass(frozen=True)
class StoredChunk:
    id: str  # ids.chunk_id(store, file, seq)
    store_id: str
    file_id: str
    filename: str
    seq: int
    text: str
    vector: Sequence[float]
    attributes: Attributes = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    store_ids: list[str]
    text: str
    vector: Sequence[float]
    limit: int = 10
    filters: Filter | None = None
    score_threshold: float = 0.0
    hybrid: bool = True  # False: vector similarity only (ranker "none")
    pool: int = 0  # candidates per list (0: max(50, 4 * limit))

    @property
    def candidates(self) -> int:
        return self.pool or max(50, 4 * self.limit)


class VectorBackend(Protocol):
    @property
    def kind(self) -> BackendType: ...

    def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        """Insert or replace by chunk id (idempotent)."""

    def delete_file(self, store_id: str, file_id: str) -> int:
        """Remove a file's chunks from a store; how many there were."""

    def delete_store(self, store_id: str) -> None: ...

    def set_attributes(self, store_id: str, file_id: str, attributes: Attributes) -> None: ...

    def count(self, store_id: str, file_id: str | None = None) -> int: ...

    def chunk_ids(self, store_id: str, file_id: str) -> list[str]:
        """The ids stored for a file (tests: nothing stored twice)."""

    def file_texts(self, store_id: str, file_id: str) -> list[str]:
        """A file's chunk texts in order."""

    def search(self, query: Query) -> list[Hit]: ...

    def close(self) -> None: ...


def rrf(*rankings: Sequence[str]) -> dict[str, float]:
    """Reciprocal rank fusion of ranked id lists (best first)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return fused


def ranked(query: Query, keyword: Sequence[str], vector: Sequence[str], cosine: dict[str, float]) -> list[str]:
    """The ids to return, best first: fused by RRF (or by cosine for a vector-only query), those under the
    score threshold left out, at most `query.limit`."""
    if query.hybrid:
        fused = rrf(keyword, vector)
        order = sorted(fused, key=lambda i: (-fused[i], -cosine.get(i, 0.0), i))
    else:
        order = sorted(vector, key=lambda i: (-cosine.get(i, 0.0), i))
    kept = [i for i in order if cosine.get(i, 0.0) >= query.score_threshold]
    return kept[:query.limit]


def similarity(distance: float) -> float:
    """Cosine distance (1 - cos) as a 0..1 score."""
    return max(0.0, min(1.0, 1.0 - distance))


@dataclass(frozen=True)
class BackendSettings:
    """Where new stores' chunks go. The daemon writes it for its job workers (`save`, mode 0600: it may hold the
    Qdrant key); a worker reads it (`load`)."""

    kind: BackendType = "sqlite-vec"
    sqlite_path: str = ""
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_path: str | None = None
    shards: int = 1
    replicas: int = 1

    def save(self, state_dir: Path) -> None:
        write_atomic(state_dir / SETTINGS_FILE, json.dumps(self.__dict__).encode(), mode=0o600)
        os.chmod(state_dir / SETTINGS_FILE, 0o600)

    @classmethod
    def load(cls, state_dir: Path) -> BackendSettings:
        path = state_dir / SETTINGS_FILE
        if not path.is_file():
            return cls(sqlite_path=str(state_dir / "vectors.db"))
        return cls(**json.loads(path.read_text()))


def open_backend(kind: BackendType, settings: BackendSettings) -> VectorBackend:
    """The backend of a store (its `backend` column), with this daemon's settings.

    Raises:
        BackendUnavailable: a Qdrant store while no Qdrant is configured, or the client cannot be loaded.
    """
    from appliance.retrieval.errors import BackendUnavailable

    if kind == "sqlite-vec":
        from appliance.retrieval.sqlitevec import SqliteVecBackend

        return SqliteVecBackend(Path(settings.sqlite_path))
    if settings.qdrant_url is None and settings.qdrant_path is None:
        raise BackendUnavailable("this vector store lives in Qdrant, and no Qdrant is configured "
                                 "(retrieval_qdrant_url)")
    from appliance.retrieval.qdrant import QdrantBackend

    return QdrantBackend(settings)
