"""The shadow runner on a real SQLite file with the real chrF: offer() never blocks (a full queue drops and
counts), the candidate gets the request as the live backend did, the aggregates and the histogram, the metrics,
worst(), the redaction of what is stored, the newest `keep` pairs kept, and the same summary after a restart."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from appliance.state import StateStore
from appliance.trials.compare import Answer
from appliance.trials.shadow import ERROR_STATUS, ShadowRunner
from tests.trials.conftest import T0, ok, request

# question → (live answer, candidate answer)
CASES = {
    "capital": ("The capital of France is Paris.", "the capital of france is paris"),  # exact
    "sky": ("The sky is blue because of Rayleigh scattering.", "Rayleigh scattering makes the sky look blue."),
    "fruit": ("Bananas are yellow.", "I would rather talk about quantum chromodynamics today."),
    "mail": ("Write to jane@example.com for help.", "Please write to jane@example.com."),
}


def _question(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def candidate_send(sent: list[dict[str, Any]], latency_s: float = 0.75) -> Callable[..., Any]:
    async def send(body: dict[str, Any]) -> Answer:
        sent.append(body)
        return ok(CASES[_question(body)][1], latency_s)

    return send


def _redact(text: str) -> str:
    return re.sub(r"\S+@\S+\.\w+", "[EMAIL]", text)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"deployment": "chat", "candidate": "chat-v2", **labels}) or 0.0


async def _run(runner: ShadowRunner, questions: list[str], start_at: float = T0) -> None:
    for i, question in enumerate(questions):
        assert runner.offer(request(question, CASES[question][0], created_at=start_at + i, redact=_redact))
    assert await runner.flush()


def test_pairs_figures_aggregates_metrics_and_what_is_stored(store: StateStore) -> None:
    sent: list[dict[str, Any]] = []
    registry = CollectorRegistry()

    async def scenario() -> None:
        runner = ShadowRunner(store, registry, candidate_send(sent))
        await runner.start()
        await _run(runner, list(CASES))
        await runner.stop()
        summary = runner.summary("chat", "chat-v2")
        assert summary.pairs == 4 and summary.offered == 4 and summary.dropped == 0
        assert summary.exact_rate == 0.25
        assert summary.latency_delta_s_mean == pytest.approx(0.25)
        assert 0.3 < summary.agreement_mean < 0.8  # type: ignore[operator]
        assert sum(b.count for b in summary.histogram) == 4 and summary.histogram[-1].count == 1  # the exact one
        assert summary.cosine_mean is None and summary.candidate_refusals == {}
        assert _sample(registry, "slm_shadow_pairs_total") == 4
        assert _sample(registry, "slm_shadow_agreement_count") == 4
        assert _sample(registry, "slm_shadow_agreement_mean") == pytest.approx(summary.agreement_mean)
        assert _sample(registry, "slm_shadow_window_pairs") == 4

    asyncio.run(scenario())
    # The candidate got the request the live backend got, under its own name, whole (no stream).
    assert [b["model"] for b in sent] == ["chat-v2"] * 4
    assert all(b["stream"] is False and "stream_options" not in b and b["max_tokens"] == 64 for b in sent)
    rows = store.query("SELECT * FROM shadow_pairs ORDER BY id")
    assert len(rows) == 4
    mail = rows[3]
    assert "jane@" not in mail["messages"] + mail["live_answer"] + mail["candidate_answer"]
    assert mail["live_answer"] == "Write to [EMAIL] for help." and "[EMAIL]" in mail["candidate_answer"]
    assert rows[0]["exact"] == 1 and rows[0]["agreement"] == 1.0 and rows[0]["created_at"] == T0


def test_offer_never_blocks_and_counts_what_it_drops(store: StateStore) -> None:
    registry = CollectorRegistry()
    release = asyncio.Event()

    async def stuck(body: dict[str, Any]) -> Answer:  # a candidate that is busy for as long as the test wants
        await release.wait()
        return ok("late")

    async def scenario() -> list[float]:
        runner = ShadowRunner(store, registry, stuck, max_queue=8)
        await runner.start()
        assert runner.offer(request("capital", "x"))
        await asyncio.sleep(0.05)  # the worker takes it and waits on the candidate
        requests = [request("capital", "x") for _ in range(2000)]  # built first: only offer() is timed
        took, accepted = [], 0
        for one in requests:
            start = time.perf_counter_ns()
            accepted += runner.offer(one)
            took.append((time.perf_counter_ns() - start) / 1000)
        assert accepted == 8  # the queue's room; the rest dropped
        summary = runner.summary("chat", "chat-v2")
        assert (summary.offered, summary.dropped) == (2001, 1992)
        assert _sample(registry, "slm_shadow_dropped_total") == 1992
        assert registry.get_sample_value("slm_shadow_queue_depth") == 8
        await runner.stop()  # the queued ones are dropped too
        assert runner.summary("chat", "chat-v2").dropped == 2000
        return took

    took = sorted(asyncio.run(scenario()))
    line = (f"offer(): {len(took)} offers, median {statistics.median(took):.1f} µs, "
            f"p99 {took[int(len(took) * 0.99)]:.1f} µs, max {took[-1]:.1f} µs")
    print(line)
    # Measured ~2 µs; the max is a scheduling hiccup of the shared box, never a wait on the candidate.
    assert statistics.median(took) < 50, line
    assert took[int(len(took) * 0.99)] < 500, line


def test_worst_returns_the_lowest_agreement_pairs_redacted(store: StateStore) -> None:
    async def scenario() -> None:
        runner = ShadowRunner(store, CollectorRegistry(), candidate_send([]))
        await runner.start()
        await _run(runner, ["capital", "fruit", "sky", "mail", "fruit"])
        worst = await asyncio.to_thread(runner.worst, "chat", "chat-v2", 3)
        await runner.stop()
        assert [p.messages[-1].content for p in worst[:2]] == ["fruit", "fruit"]
        assert worst[0].id > worst[1].id  # newest first among equals
        agreements = [p.figures.agreement for p in worst]
        assert agreements == sorted(agreements) and len(worst) == 3
        assert all(p.live == "chat" and p.candidate == "chat-v2" for p in worst)
        assert worst[0].candidate_answer == CASES["fruit"][1] and worst[0].messages[0].role == "system"
        assert runner.worst("chat", "other", 3) == []

    asyncio.run(scenario())


def test_each_shadow_keeps_its_newest_pairs_and_a_restart_gives_the_same_summary(store: StateStore) -> None:
    questions = ["fruit", "fruit", "fruit", "capital", "sky", "mail", "capital", "sky"]

    async def first() -> dict[str, Any]:
        runner = ShadowRunner(store, CollectorRegistry(), candidate_send([]), keep=5)
        await runner.start()
        await _run(runner, questions)
        assert runner.offer(request("capital", CASES["capital"][0], candidate="other"))  # another shadow
        assert await runner.flush()
        await runner.stop()
        return runner.summary("chat", "chat-v2").model_dump()

    async def second() -> tuple[dict[str, Any], int]:
        registry = CollectorRegistry()
        runner = ShadowRunner(store, registry, candidate_send([]), keep=5)
        await runner.start()
        summary = runner.summary("chat", "chat-v2").model_dump()
        others = runner.summary("chat", "other").pairs
        assert _sample(registry, "slm_shadow_window_pairs") == 5
        await runner.stop()
        return summary, others

    before = asyncio.run(first())
    after, others = asyncio.run(second())
    assert before["pairs"] == 5 and before["since"] == T0 + 3  # the three oldest (the fruit ones) left
    assert before["exact_rate"] == 0.4 and before["histogram"][0]["count"] == 0
    since_start = ("offered", "dropped", "embed_failures", "unstored")
    assert {k: v for k, v in after.items() if k not in since_start} == \
           {k: v for k, v in before.items() if k not in since_start}
    assert after["offered"] == 0 and others == 1
    rows = store.query("SELECT candidate, COUNT(*) AS n FROM shadow_pairs GROUP BY candidate ORDER BY candidate")
    assert [(r["candidate"], r["n"]) for r in rows] == [("chat-v2", 5), ("other", 1)]


def test_embeddings_cosine_and_failures(store: StateStore) -> None:
    calls: list[list[str]] = []
    registry = CollectorRegistry()

    async def embed(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        if "Bananas" in texts[0]:
            raise RuntimeError("embeddings deployment not serving")
        return [[1.0, 0.0], [0.8, 0.6]]

    async def send(body: dict[str, Any]) -> Answer:
        if _question(body) == "mail":
            return Answer(400, "", 0.01)  # the candidate's guardrail refused
        return ok(CASES[_question(body)][1])

    async def scenario() -> None:
        runner = ShadowRunner(store, registry, send, embed=embed)
        await runner.start()
        await _run(runner, ["capital", "fruit", "mail"])
        await runner.stop()
        summary = runner.summary("chat", "chat-v2")
        assert summary.cosine_pairs == 1 and summary.cosine_mean == pytest.approx(0.8)
        assert summary.embed_failures == 1 and _sample(registry, "slm_shadow_embed_failures_total") == 1
        assert summary.candidate_refusals == {"error": 1}
        assert _sample(registry, "slm_shadow_refusal_ratio", side="candidate") == pytest.approx(1 / 3)

    asyncio.run(scenario())
    assert len(calls) == 2  # no embeddings for a refused pair
    cosines = [r["cosine"] for r in store.query("SELECT cosine FROM shadow_pairs ORDER BY id")]
    assert cosines[0] == pytest.approx(0.8) and cosines[1:] == [None, None]


def test_a_candidate_that_fails_or_hangs_is_an_error_side(store: StateStore) -> None:
    async def send(body: dict[str, Any]) -> Answer:
        if _question(body) == "sky":
            await asyncio.sleep(10)
        raise ConnectionError("candidate backend is down")

    async def scenario() -> None:
        runner = ShadowRunner(store, CollectorRegistry(), send, send_timeout_s=0.1)
        await runner.start()
        await _run(runner, ["capital", "sky"])
        await runner.stop()
        summary = runner.summary("chat", "chat-v2")
        assert summary.pairs == 2 and summary.agreement_mean == 0.0 and summary.candidate_refusals == {"error": 2}

    asyncio.run(scenario())
    assert [r["candidate_status"] for r in store.query("SELECT * FROM shadow_pairs")] == [ERROR_STATUS] * 2


def test_a_pair_whose_redaction_fails_is_never_stored(store: StateStore) -> None:
    def broken(text: str) -> str:
        raise ValueError("recogniser timed out")

    async def scenario() -> None:
        registry = CollectorRegistry()
        runner = ShadowRunner(store, registry, candidate_send([]))
        await runner.start()
        assert runner.offer(request("capital", CASES["capital"][0], redact=broken))
        assert await runner.flush()
        await runner.stop()
        summary = runner.summary("chat", "chat-v2")
        assert summary.pairs == 1 and summary.unstored == 1  # compared and counted, not kept
        assert _sample(registry, "slm_shadow_unstored_total") == 1

    asyncio.run(scenario())
    assert store.query("SELECT * FROM shadow_pairs") == []


def test_forget_removes_a_shadow_and_optionally_its_pairs(store: StateStore) -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        runner = ShadowRunner(store, registry, candidate_send([]))
        await runner.start()
        await _run(runner, ["capital", "sky"])
        assert await runner.forget("chat", "chat-v2", delete=True) == 2
        assert runner.summaries() == [] and _sample(registry, "slm_shadow_pairs_total") == 0
        assert runner.summary("chat", "chat-v2").pairs == 0
        await runner.stop()

    asyncio.run(scenario())
    assert store.query("SELECT * FROM shadow_pairs") == []


def test_requests_queued_for_a_shadow_detached_since_are_not_sent(store: StateStore) -> None:
    release, sent = asyncio.Event(), []

    async def candidate(body: dict[str, Any]) -> Answer:
        sent.append(_question(body))
        await release.wait()
        return ok("Paris.")

    async def scenario() -> None:
        runner = ShadowRunner(store, CollectorRegistry(), candidate)
        await runner.start()
        for question in ("capital", "sky", "fruit"):
            assert runner.offer(request(question, CASES[question][0]))
        await asyncio.sleep(0.05)
        assert sent == ["capital"]  # the first is with the candidate, two wait
        await runner.forget("chat", "chat-v2", delete=True)  # the operator clears the shadow
        release.set()
        assert await runner.flush()
        await runner.stop()
        assert runner.summaries() == []  # the answer in flight made no window again

    asyncio.run(scenario())
    assert sent == ["capital"]
