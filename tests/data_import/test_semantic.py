"""Semantic dedup's core with stated vectors (no model): the greedy walk in file order against kept records only,
ties to the earliest, zero vectors, block boundaries; and through the real pipeline: after exact and MinHash
dedup, each dropped record in the report with the line it repeats, its cosine and the Jaccard MinHash saw."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from appliance.datasets import DatasetError
from appliance.datasets.pipeline import Options, prepare
from appliance.datasets.semantic import SemanticOptions, find_duplicates, semantic_pass, unit_rows


def _angles(*degrees: float) -> list[list[float]]:
    return [[float(np.cos(np.radians(d))), float(np.sin(np.radians(d)))] for d in degrees]


def test_a_record_close_to_a_dropped_one_only_is_kept() -> None:
    # 0° and 20° are close (cos 0.94), 20° and 40° too, 0° and 40° not (cos 0.77): 20° goes, 40° stays.
    found = find_duplicates(unit_rows(_angles(0, 20, 40)), threshold=0.9)
    assert [(d.index, d.duplicate_of) for d in found] == [(1, 0)]
    assert found[0].similarity == pytest.approx(np.cos(np.radians(20)))


def test_the_most_similar_kept_record_is_named_and_ties_go_to_the_earliest() -> None:
    found = find_duplicates(unit_rows(_angles(0, 90, 85, 5, 5)), threshold=0.95)
    # 85° is close to 90° (cos 0.996) and not to 0°; both 5° records are closest to 0°.
    assert [(d.index, d.duplicate_of) for d in found] == [(2, 1), (3, 0), (4, 0)]
    twins = find_duplicates(unit_rows([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), threshold=1.0)
    assert [(d.index, d.duplicate_of) for d in twins] == [(1, 0), (2, 0)]


def test_zero_vectors_match_nothing_and_bad_shapes_are_refused() -> None:
    assert find_duplicates(unit_rows([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), threshold=0.5) == []
    with pytest.raises(DatasetError, match="one vector per text"):
        unit_rows([1.0, 2.0])  # type: ignore[list-item]


def test_blocks_do_not_change_the_verdicts() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 32))
    vectors = np.repeat(centres, 5, axis=0) + rng.normal(scale=0.15, size=(200, 32))
    unit = unit_rows(vectors.tolist())
    whole = find_duplicates(unit, threshold=0.9)
    assert whole == find_duplicates(unit, threshold=0.9)  # the same blocks, the same bits
    for block in (7, 1):  # other blocks: the same verdicts (the dot products may differ in the last bit)
        other = find_duplicates(unit, threshold=0.9, block=block)
        assert [(d.index, d.duplicate_of) for d in other] == [(d.index, d.duplicate_of) for d in whole]
        assert [d.similarity for d in other] == pytest.approx([d.similarity for d in whole], abs=1e-12)
    assert 100 < len(whole) < 200  # most near-copies of a centre go; each centre keeps at least one record


def test_the_comparison_of_5000_records_is_fast() -> None:
    unit = unit_rows(np.random.default_rng(0).normal(size=(5000, 384)).tolist())
    started = time.process_time()
    assert find_duplicates(unit, threshold=0.9) == []
    assert time.process_time() - started < 10  # ~0.4 s of CPU on this box; generous for a loaded one


def _lines(records: list[tuple[str, str]]) -> bytes:
    return "".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                   + "\n" for q, a in records).encode()


def test_the_pipeline_drops_semantic_duplicates_after_minhash_and_reports_the_pairs() -> None:
    records = [("Reset my password?", "Use Settings."), ("Capital of France?", "Paris."),
               ("Reset my password?", "Use Settings."),  # 3: exact duplicate of 1, never embedded
               ("How can I change my password?", "Open Settings."), ("Capital of Spain?", "Madrid.")]
    by_text = {"Reset my password?\nUse Settings.": [1.0, 0.0], "Capital of France?\nParis.": [0.0, 1.0],
               "How can I change my password?\nOpen Settings.": [0.95, 0.05],
               "Capital of Spain?\nMadrid.": [0.5, 0.5]}
    embedded: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        embedded.extend(texts)
        return [by_text[t] for t in texts]

    options = SemanticOptions(embed=embed, threshold=0.95, embedder="fake")
    prepared = prepare(_lines(records), "jsonl", Options(eval_fraction=0.0, semantic=options))
    report = prepared.report
    assert len(embedded) == 4  # the exact duplicate was gone before the semantic pass
    assert (report.exact_duplicates, report.near_duplicates, report.semantic_duplicates) == (1, 0, 1)
    assert report.duplicates_removed == 2 and report.train_count == 3
    semantic = [d for d in report.duplicates if d.kind == "semantic"]
    assert [(d.line, d.duplicate_of) for d in semantic] == [(4, 1)]
    assert semantic[0].similarity == pytest.approx(0.9986, abs=1e-4) and semantic[0].jaccard < 0.5
    assert "semantic duplicate (cosine 0.999" in str(semantic[0])
    assert report.semantic_dedup is not None and report.semantic_dedup.records_compared == 4
    assert report.semantic_dedup.embedder == "fake" and report.semantic_dedup.dimensions == 2
    assert [r["messages"][0]["content"] for r in prepared.train] == [
        "Reset my password?", "Capital of France?", "Capital of Spain?"]


def test_long_texts_are_cut_and_counted_and_a_wrong_count_of_vectors_is_refused() -> None:
    records = [("x " * 3000, "long"), ("short", "answer")]
    seen: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return [[1.0, float(i)] for i in range(len(texts))]

    report = prepare(_lines(records), "jsonl", Options(semantic=SemanticOptions(embed, max_chars=100))).report
    assert len(seen[0]) == 100 and report.semantic_dedup is not None and report.semantic_dedup.texts_cut == 1
    with pytest.raises(DatasetError, match="1 vectors for 2 texts"):
        prepare(_lines(records), "jsonl", Options(semantic=SemanticOptions(lambda texts: [[1.0, 0.0]])))
    with pytest.raises(DatasetError, match="threshold 1.5"):
        semantic_pass([[{"role": "user", "content": "x"}]], SemanticOptions(embed, threshold=1.5))
