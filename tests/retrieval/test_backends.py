"""Both vector backends through the same tests (sqlite-vec and Qdrant's local mode): idempotent upserts,
attribute filters with every operator and compound ones, the score threshold, reciprocal rank fusion, deletes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.retrieval.backend import BackendSettings, Query, StoredChunk, VectorBackend, open_backend, rrf
from appliance.retrieval.filters import matches, parse_filter
from appliance.retrieval.ids import chunk_id
from tests.retrieval.conftest import bag_of_words

TEXTS = {  # file -> (attributes, chunk texts)
    "file-a": ({"line": "A", "year": 2021, "approved": True},
               ["hydraulic press clamp torque is 42 newton metres", "press maintenance every 200 hours"]),
    "file-b": ({"line": "B", "year": 2023, "approved": False},
               ["conveyor belt speed limit", "conveyor belt tension check weekly"]),
    "file-c": ({"line": "C", "year": 2024.5},
               ["lathe spindle speed 3000 rpm", "safety goggles at the lathe"]),
}


def chunks(store: str = "vs_test") -> list[StoredChunk]:
    return [StoredChunk(id=chunk_id(store, file_id, seq), store_id=store, file_id=file_id, filename=f"{file_id}.md",
                        seq=seq, text=text, vector=bag_of_words(text), attributes=attributes)
            for file_id, (attributes, texts) in TEXTS.items() for seq, text in enumerate(texts)]


@pytest.fixture(params=["sqlite-vec", "qdrant"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorBackend]:
    settings = BackendSettings(kind=request.param, sqlite_path=str(tmp_path / "vectors.db"),
                               qdrant_path=str(tmp_path / "qdrant"))
    found = open_backend(request.param, settings)
    found.upsert(chunks())
    yield found
    found.close()


def search(backend: VectorBackend, text: str, **kw: object) -> list[str]:
    query = Query(store_ids=kw.pop("store_ids", ["vs_test"]), text=text, vector=bag_of_words(text), **kw)  # type: ignore[arg-type]
    return [f"{h.file_id}#{h.seq}" for h in backend.search(query)]


def test_upsert_is_idempotent(backend: VectorBackend) -> None:
    assert backend.count("vs_test") == 6
    backend.upsert(chunks())
    backend.upsert(chunks()[:3])
    assert backend.count("vs_test") == 6 and backend.count("vs_test", "file-a") == 2
    ids = backend.chunk_ids("vs_test", "file-a")
    assert ids == [chunk_id("vs_test", "file-a", 0), chunk_id("vs_test", "file-a", 1)]
    assert backend.file_texts("vs_test", "file-b") == TEXTS["file-b"][1]


def test_search_finds_and_scores(backend: VectorBackend) -> None:
    hits = backend.search(Query(["vs_test"], "conveyor belt speed", bag_of_words("conveyor belt speed"), limit=3))
    assert hits[0].file_id == "file-b" and hits[0].seq == 0 and hits[0].filename == "file-b.md"
    assert hits[0].score == pytest.approx(3 / 12 ** 0.5, abs=1e-4) and hits[0].attributes["line"] == "B"
    assert hits[0].text == "conveyor belt speed limit"


FILTERS = [
    ({"type": "eq", "key": "line", "value": "A"}, {"file-a"}),
    ({"type": "ne", "key": "line", "value": "A"}, {"file-b", "file-c"}),
    ({"type": "gt", "key": "year", "value": 2021}, {"file-b", "file-c"}),
    ({"type": "gte", "key": "year", "value": 2023}, {"file-b", "file-c"}),
    ({"type": "lt", "key": "year", "value": 2023}, {"file-a"}),
    ({"type": "lte", "key": "year", "value": 2024.5}, {"file-a", "file-b", "file-c"}),
    ({"type": "eq", "key": "year", "value": 2024.5}, {"file-c"}),
    ({"type": "eq", "key": "year", "value": 2023.0}, {"file-b"}),
    ({"type": "in", "key": "line", "value": ["A", "C"]}, {"file-a", "file-c"}),
    ({"type": "nin", "key": "line", "value": ["A", "C"]}, {"file-b"}),
    ({"type": "eq", "key": "approved", "value": True}, {"file-a"}),
    ({"type": "ne", "key": "approved", "value": True}, {"file-b", "file-c"}),  # missing key: ne holds
    ({"type": "eq", "key": "missing", "value": "x"}, set()),
    ({"type": "and", "filters": [{"type": "gte", "key": "year", "value": 2021},
                                 {"type": "ne", "key": "line", "value": "B"}]}, {"file-a", "file-c"}),
    ({"type": "or", "filters": [{"type": "eq", "key": "line", "value": "A"},
                                {"type": "and", "filters": [{"type": "gt", "key": "year", "value": 2024},
                                                            {"type": "eq", "key": "line", "value": "C"}]}]},
     {"file-a", "file-c"}),
]


@pytest.mark.parametrize(("raw", "expected"), FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filters(backend: VectorBackend, raw: dict, expected: set[str]) -> None:
    flt = parse_filter(raw)
    assert {f for f, (attrs, _) in TEXTS.items() if matches(flt, attrs)} == expected  # the reference meaning
    hits = search(backend, "speed torque safety maintenance conveyor lathe press", filters=flt, limit=20)
    assert {h.split("#")[0] for h in hits} == expected


def test_score_threshold(backend: VectorBackend) -> None:
    everything = backend.search(Query(["vs_test"], "lathe spindle speed", bag_of_words("lathe spindle speed"),
                                      limit=10))
    assert len(everything) == 6
    strict = backend.search(Query(["vs_test"], "lathe spindle speed", bag_of_words("lathe spindle speed"),
                                  limit=10, score_threshold=0.5))
    assert strict and all(h.score >= 0.5 for h in strict) and len(strict) < len(everything)
    assert {h.file_id for h in strict} == {"file-c"}


def test_rrf_puts_the_chunk_both_lists_like_first(backend: VectorBackend) -> None:
    # The text query favours "weekly" (a keyword only file-b#1 has); the vector says "lathe": fused, a chunk that
    # ranks well in both lists wins over one that tops only one of them.
    query = Query(["vs_test"], "tension weekly", bag_of_words("conveyor belt tension lathe"), limit=6)
    hits = [f"{h.file_id}#{h.seq}" for h in backend.search(query)]
    assert hits[0] == "file-b#1"
    vector_only = Query(["vs_test"], "tension weekly", bag_of_words("lathe spindle speed 3000 rpm"), limit=2,
                        hybrid=False)
    assert next(f"{h.file_id}#{h.seq}" for h in backend.search(vector_only)) == "file-c#0"


def test_rrf_arithmetic() -> None:
    fused = rrf(["a", "b", "c"], ["c", "a"])
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert sorted(fused, key=lambda k: -fused[k]) == ["a", "c", "b"]


def test_attributes_update_and_deletes(backend: VectorBackend) -> None:
    backend.set_attributes("vs_test", "file-b", {"line": "A"})
    assert {h.split("#")[0] for h in search(backend, "belt", filters=parse_filter(
        {"type": "eq", "key": "line", "value": "A"}))} == {"file-a", "file-b"}
    assert backend.delete_file("vs_test", "file-a") == 2
    assert backend.count("vs_test") == 4 and backend.chunk_ids("vs_test", "file-a") == []
    backend.upsert(chunks("vs_other"))
    assert {h.split("#")[0] for h in search(backend, "press clamp torque", store_ids=["vs_test", "vs_other"],
                                            limit=3)} >= {"file-a"}
    backend.delete_store("vs_test")
    assert backend.count("vs_test") == 0 and backend.count("vs_other") == 6
    assert search(backend, "press", store_ids=["vs_test"]) == []
