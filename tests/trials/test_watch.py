"""The live watch with an injected clock: a canary whose candidate's error rate jumps is rolled back exactly once
with the figures in the verdict; within the thresholds, or with too few requests, nothing happens; after a switch
the new version is judged against the baseline frozen before it, for a window; the thumbs rule; report-only
watches and failed rollbacks keep the regressed gauge up; the settings' merge."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from appliance.errors import BadRequest
from appliance.trials.canary import Outcomes, Thumbs
from appliance.trials.verdict import Verdict, WatchSettings, merge
from appliance.trials.watch import ArmRef, LiveWatch
from tests.trials.conftest import Clock

LIVE, CANDIDATE = ArmRef("chat:m1", "m1"), ArmRef("chat-v2:m2", "m2")
SETTINGS = WatchSettings(window_s=600, min_requests=50)


class Harness:
    def __init__(self, feedback: dict[str, Thumbs] | None = None, fail_rollback: bool = False) -> None:
        self.clock = Clock()
        self.outcomes = Outcomes(clock=self.clock)
        self.registry = CollectorRegistry()
        self.rollbacks: list[tuple[str, Verdict]] = []
        self.fail_rollback = fail_rollback
        self.watch = LiveWatch(self.outcomes, self.rollback, self.registry, feedback=(
            None if feedback is None else lambda model_id, since, until: feedback[model_id]))

    async def rollback(self, deployment: str, verdict: Verdict) -> None:
        self.rollbacks.append((deployment, verdict))
        if self.fail_rollback:
            raise RuntimeError("the previous version would not start")

    def traffic(self, arm: ArmRef, requests: int, *, errors: int = 0, latency_s: float = 0.2, blocked: int = 0,
                seconds: float = 60) -> None:
        """`requests` spread over `seconds` of the clock, the first `errors` failing with 502."""
        for i in range(requests):
            self.outcomes.record("chat", arm.arm, 502 if i < errors else 200, latency_s,
                                 blocked=errors <= i < errors + blocked)
            self.clock.advance(seconds / requests)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"deployment": "chat", **labels}) or 0.0


def test_a_canary_whose_error_rate_jumps_is_rolled_back_exactly_once() -> None:
    h = Harness()
    h.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS)
    h.traffic(LIVE, 200, errors=2)  # 1 %
    h.traffic(CANDIDATE, 60, errors=9)  # 15 %

    async def scenario() -> list[list[Verdict]]:
        return [await h.watch.evaluate() for _ in range(3)]

    passes = asyncio.run(scenario())
    assert [len(p) for p in passes] == [1, 0, 0]  # the watch ended with its rollback
    assert len(h.rollbacks) == 1
    deployment, verdict = h.rollbacks[0]
    assert deployment == "chat" and verdict.regressed and verdict.rolled_back and verdict.kind == "canary"
    assert verdict.reason == "error_rate"
    assert (verdict.candidate.requests, verdict.candidate.errors) == (60, 9)
    assert (verdict.baseline.requests, verdict.baseline.errors) == (200, 2)
    error_check = verdict.checks[0]
    assert error_check.judged and error_check.exceeded and error_check.change == pytest.approx(0.14)
    assert verdict.reasons == ["error rate 0.150 against 0.010, up 0.140 (limit 0.050)"]
    assert verdict.figures()["reasons"] == verdict.reasons
    assert verdict.figures()["candidate_figures"]["error_rate"] == 0.15
    assert h.sample("slm_live_watch_rollbacks_total", reason="error_rate") == 1
    assert h.sample("slm_live_watch_regressed") == 0  # rolled back: nothing left to alert on but the counter
    assert h.watch.watching() == [] and h.watch.verdict("chat") == verdict


def test_within_the_thresholds_nothing_happens() -> None:
    h = Harness()
    h.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS)
    h.traffic(LIVE, 200, errors=2, latency_s=0.2)
    h.traffic(CANDIDATE, 100, errors=4, latency_s=0.28, blocked=3)  # +3 points errors, 1.4× p95, +3 % blocks
    [verdict] = asyncio.run(h.watch.evaluate())
    assert not verdict.regressed and verdict.reasons == [] and h.rollbacks == []
    judged = {c.rule: c for c in verdict.checks}
    assert judged["error_rate"].judged and judged["p95_latency"].change == pytest.approx(1.4)
    assert judged["guardrail_blocks"].change == pytest.approx(0.03)
    assert not judged["thumbs_down"].judged  # no feedback wired in
    assert h.sample("slm_live_watch_regressed") == 0 and len(h.watch.watching()) == 1


def test_too_few_requests_are_not_judged() -> None:
    h = Harness()
    h.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS)
    h.traffic(LIVE, 200)
    h.traffic(CANDIDATE, 20, errors=20)  # all failing, but 20 of the 50 needed
    [verdict] = asyncio.run(h.watch.evaluate())
    assert not verdict.regressed and h.rollbacks == []
    assert verdict.checks[0].note == "candidate 20 of 50 requests"
    h.traffic(CANDIDATE, 40, errors=40)
    [verdict] = asyncio.run(h.watch.evaluate())
    assert verdict.regressed and len(h.rollbacks) == 1


def test_after_a_switch_the_new_version_is_judged_against_the_baseline_before_it() -> None:
    h = Harness()
    previous, new = ArmRef("chat:m1", "m1"), ArmRef("chat:m2", "m2")
    h.traffic(previous, 300, latency_s=0.2, seconds=1200)  # 20 minutes before; the window keeps the last 10
    watch = h.watch.watch_switch("chat", previous, new, SETTINGS)
    assert watch.baseline_figures is not None and watch.baseline_figures.requests == 150
    h.traffic(new, 100, latency_s=0.5, seconds=120)
    [verdict] = asyncio.run(h.watch.evaluate())
    assert verdict.kind == "switch" and verdict.regressed and verdict.reason == "p95_latency"
    assert verdict.reasons == ["p95 latency 0.500s is 2.50× the baseline's 0.200s (limit 1.50×)"]
    assert verdict.since == watch.started_at and verdict.until == h.clock.now
    assert h.rollbacks[0][1].baseline_arm == "chat:m1" and h.rollbacks[0][1].candidate_arm == "chat:m2"
    assert h.sample("slm_live_watch_rollbacks_total", reason="p95_latency") == 1


def test_a_switch_that_stays_within_its_thresholds_is_watched_for_its_window_only() -> None:
    h = Harness()
    previous, new = ArmRef("chat:m1"), ArmRef("chat:m2")
    h.traffic(previous, 100, seconds=600)
    h.watch.watch_switch("chat", previous, new, SETTINGS)
    h.traffic(new, 100, seconds=300)
    assert len(asyncio.run(h.watch.evaluate())) == 1 and len(h.watch.watching()) == 1
    h.traffic(new, 100, seconds=400)  # past the 600 s window: a last verdict over it, then the watch ends
    [last] = asyncio.run(h.watch.evaluate())
    assert not last.regressed and last.until == last.since + 600
    assert h.watch.watching() == [] and h.rollbacks == []


def test_the_thumbs_down_rule() -> None:
    h = Harness(feedback={"m1": Thumbs(up=90, down=10), "m2": Thumbs(up=18, down=12)})
    h.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS)
    h.traffic(LIVE, 100)
    h.traffic(CANDIDATE, 100)
    [verdict] = asyncio.run(h.watch.evaluate())
    assert verdict.reason == "thumbs_down" and verdict.rolled_back
    assert (verdict.candidate.thumbs_down_rate, verdict.baseline.thumbs_down_rate) == (0.4, 0.1)
    assert verdict.reasons == ["thumbs-down rate 0.400 against 0.100, up 0.300 (limit 0.150)"]


def test_report_only_and_failed_rollbacks_keep_the_regressed_gauge_up() -> None:
    h = Harness()
    h.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS.model_copy(update={"auto_rollback": False}))
    h.traffic(LIVE, 100)
    h.traffic(CANDIDATE, 100, errors=50)
    [verdict] = asyncio.run(h.watch.evaluate())
    assert verdict.regressed and not verdict.rolled_back and h.rollbacks == []
    assert h.sample("slm_live_watch_regressed") == 1 and h.sample("slm_live_watch_rollbacks_total",
                                                                  reason="error_rate") == 0
    h.watch.end("chat")  # the operator aborts the canary
    assert h.sample("slm_live_watch_regressed") == 0

    failing = Harness(fail_rollback=True)
    failing.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS)
    failing.traffic(LIVE, 100)
    failing.traffic(CANDIDATE, 100, errors=50)
    asyncio.run(failing.watch.evaluate())
    asyncio.run(failing.watch.evaluate())
    assert len(failing.rollbacks) == 1  # once per watch, not retried
    assert failing.watch.watching()[0].rollback_failed and failing.sample("slm_live_watch_regressed") == 1


def test_the_periodic_task_rolls_back_on_its_own() -> None:
    h = Harness()
    h.watch.interval_s = 0.01
    h.watch.watch_canary("chat", LIVE, CANDIDATE, SETTINGS)
    h.traffic(LIVE, 100)
    h.traffic(CANDIDATE, 100, errors=50)

    async def scenario() -> None:
        h.watch.start()
        for _ in range(200):
            if h.rollbacks:
                break
            await asyncio.sleep(0.01)
        await h.watch.stop()

    asyncio.run(scenario())
    assert len(h.rollbacks) == 1


def test_merge_puts_a_deployment_s_overrides_over_the_profile_defaults() -> None:
    defaults = WatchSettings(window_s=1800, max_p95_ratio=2.0)
    merged = merge(defaults, {"min_requests": 20, "max_thumbs_down_increase": None})
    assert (merged.window_s, merged.max_p95_ratio, merged.min_requests) == (1800, 2.0, 20)
    assert merged.max_thumbs_down_increase is None  # the rule turned off for this deployment
    assert merge(defaults, None) == defaults
    with pytest.raises(BadRequest) as wrong:
        merge(defaults, {"max_p95_ratio": 0.5})
    assert wrong.value.param == "watch.max_p95_ratio" and "greater than or equal to 1" in wrong.value.message
    with pytest.raises(BadRequest) as unknown:
        merge(defaults, {"max_latency": 3})
    assert unknown.value.param == "watch.max_latency"
    assert WatchSettings.model_json_schema()["properties"]["window_s"]["description"]
