"""The canary split (sticky per key, the share of keys on the candidate close to the weight, a raised weight
only moves keys to the candidate) and the outcomes of each arm (error and block rates, p95 over a sliding time
window), and the thumbs of the app feedback from the capture tables."""

from __future__ import annotations

import pytest

from appliance.capture.models import FeedbackBody
from appliance.state import StateStore
from appliance.trials.canary import Canary, Outcomes, percentile, side_for, thumbs
from tests.capture.conftest import insert, item
from tests.trials.conftest import T0, Clock

KEYS = [f"key-{i:05d}" for i in range(10_000)]


def test_a_key_always_gets_the_same_side() -> None:
    canary = Canary("chat", "chat-v2", 0.3, salt="s1")
    first = [canary.side_for(k) for k in KEYS[:500]]
    assert [canary.side_for(k) for k in KEYS[:500]] == first
    assert [side_for(k, "s1", 0.3) for k in KEYS[:500]] == first  # the same function, nothing kept per key
    assert set(first) == {"live", "candidate"}


@pytest.mark.parametrize("weight", [0.05, 0.2, 0.5])
def test_the_share_of_keys_on_the_candidate_is_the_weight(weight: float) -> None:
    share = sum(side_for(k, "canary-7", weight) == "candidate" for k in KEYS) / len(KEYS)
    # binomial: standard deviation sqrt(w(1-w)/n) ≤ 0.005; four of them
    assert share == pytest.approx(weight, abs=0.02)


def test_weights_and_salts() -> None:
    small = {k for k in KEYS if side_for(k, "s", 0.05) == "candidate"}
    large = {k for k in KEYS if side_for(k, "s", 0.2) == "candidate"}
    assert small < large  # raising the weight keeps the candidate's keys there
    other = {k for k in KEYS if side_for(k, "another canary", 0.2) == "candidate"}
    assert len(other & large) < 0.5 * len(large)  # a new canary draws the keys afresh
    assert all(side_for(k, "s", 0.0) == "live" and side_for(k, "s", 1.0) == "candidate" for k in KEYS[:100])
    assert Canary("chat", "v2", 0.1).salt != Canary("chat", "v2", 0.1).salt
    with pytest.raises(ValueError, match="outside 0 to 1"):
        Canary("chat", "v2", 1.5)


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
    assert percentile([float(i) for i in range(1, 21)], 0.95) == 19.0


def test_side_figures_over_a_sliding_window() -> None:
    clock = Clock()
    outcomes = Outcomes(retention_s=600, clock=clock)
    for i in range(100):  # one a second: 1..100 ms, every tenth a 502, every twentieth blocked
        status = 502 if i % 10 == 9 else 200
        outcomes.record("chat", "live", status, (i + 1) / 1000, blocked=i % 20 == 0)
        clock.advance(1)
    all_of_it = outcomes.figures("chat", "live", T0)
    assert (all_of_it.requests, all_of_it.errors, all_of_it.blocked) == (100, 10, 5)
    assert all_of_it.error_rate == 0.1 and all_of_it.block_rate == 0.05
    answered = sorted((i + 1) / 1000 for i in range(100) if i % 10 != 9 and i % 20 != 0)
    assert all_of_it.p95_latency_s == percentile(answered, 0.95)
    last_half = outcomes.figures("chat", "live", T0 + 50)
    assert (last_half.requests, last_half.errors, last_half.blocked) == (50, 5, 2)
    assert outcomes.figures("chat", "live", T0 + 10, until=T0 + 20).requests == 11  # both ends included
    assert outcomes.figures("chat", "candidate", T0).requests == 0
    dumped = all_of_it.model_dump()
    assert dumped["error_rate"] == 0.1 and dumped["thumbs_down_rate"] is None


def test_a_stream_error_counts_and_old_outcomes_go() -> None:
    clock = Clock()
    outcomes = Outcomes(retention_s=60, max_samples=1000, clock=clock)
    outcomes.record("chat", "a", 200, 0.1, error=True)  # 200 sent, then the backend died mid-stream
    outcomes.record("chat", "a", 429, 0.1)  # the gateway's own queue: not the model's error
    assert outcomes.figures("chat", "a", T0).errors == 1
    clock.advance(120)
    outcomes.record("chat", "a", 200, 0.1)
    assert outcomes.figures("chat", "a", 0).requests == 1  # the two older than 60 s are gone
    outcomes.forget("chat")
    assert outcomes.figures("chat", "a", 0).requests == 0


def test_thumbs_from_the_capture_feedback(store: StateStore) -> None:
    from appliance.capture.feedback import record_feedback
    from appliance.security.keys import create_key

    key = create_key(store, "app", "inference").key
    rows = [item(f"chatcmpl-{i}", key=key, created_at=T0 + i) for i in range(10)]
    rows += [item("chatcmpl-other", key=key, created_at=T0 + 1).model_copy(update={"model_id": "m2"})]
    insert(store, *rows)
    for i, rating in enumerate(["down", "down", "up", "up", "up", 4, 3, 1]):
        record_feedback(store, key, FeedbackBody(response_id=f"chatcmpl-{i}", rating=rating))
    record_feedback(store, key, FeedbackBody(response_id="chatcmpl-other", rating="down"))
    assert thumbs(store, "m1", T0, T0 + 100) == (4, 3)  # 4 is up, 3 is neither, 1 is down
    assert thumbs(store, "m1", T0 + 2, T0 + 6) == (4, 0)  # items 2 to 5: up, up, up, 4
    assert thumbs(store, "m2", T0, T0 + 100) == (0, 1)
    assert thumbs(store, "m1", T0, T0 + 100, deployment="elsewhere") == (0, 0)
