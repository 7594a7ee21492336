"""The shadow gate: passes at or above the agreement over enough pairs; refused with the numbers otherwise (409
`shadow_gate_failed`, carrying the figures for the audit line); forcible."""

from __future__ import annotations

import pytest

from appliance.errors import ApplianceError
from appliance.trials.gate import ShadowGateFailed, check, judge, shadow_gate
from appliance.trials.models import ShadowSummary


def summary(pairs: int, agreement: float | None, **fields: object) -> ShadowSummary:
    return ShadowSummary(live="chat", candidate="chat-v2", pairs=pairs, keep=2000, agreement_mean=agreement,
                         **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("pairs", "agreement", "passed", "words"), [
    # enough pairs, agreement above the threshold
    (500, 0.91, True, "agreement 0.910 over 500 pairs"),
    # exactly at the threshold and exactly the pairs needed: passes (≥)
    (200, 0.85, True, "agreement 0.850 over 200 pairs"),
    # enough pairs, agreement below
    (500, 0.62, False, "agreement 0.620 over 500 pairs, below 0.85"),
    # a high agreement over too few pairs proves nothing
    (12, 0.99, False, "12 shadow pairs, fewer than 200"),
    # no pairs at all
    (0, None, False, "0 shadow pairs, fewer than 200"),
])
def test_judge(pairs: int, agreement: float | None, passed: bool, words: str) -> None:
    ok, reason = judge(summary(pairs, agreement), min_agreement=0.85, min_pairs=200)
    assert ok is passed
    assert words in reason and "needs ≥ 0.85 over ≥ 200 pairs" in reason


def test_a_gate_asking_for_more_pairs_than_are_kept_says_so() -> None:
    passed, reason = judge(summary(2000, 0.99), min_agreement=0.85, min_pairs=5000)
    assert not passed and reason.endswith("the shadow keeps at most 2000: lower min_pairs")


def test_a_refusal_is_a_409_with_the_figures() -> None:
    shadow = summary(500, 0.62, exact_rate=0.1, candidate_refusals={"error": 3, "empty": 2})
    with pytest.raises(ShadowGateFailed) as refused:
        check(shadow, 0.85, 200)
    error = refused.value
    assert isinstance(error, ApplianceError)
    assert (error.status, error.code, error.type) == (409, "shadow_gate_failed", "conflict_error")
    assert "chat-v2 against chat: agreement 0.620 over 500 pairs, below 0.85" in error.message
    assert "force" in error.message
    assert error.gate.figures() == {
        "shadow": "chat ← chat-v2", "pairs": 500, "agreement": 0.62, "exact_rate": 0.1, "candidate_refusals": 5,
        "live_refusals": 0, "min_agreement": 0.85, "min_pairs": 200, "passed": False,
        "reason": error.gate.reason}


def test_forced_it_returns_the_failed_figures_to_audit() -> None:
    gate = check(summary(500, 0.62), 0.85, 200, force=True)
    assert not gate.passed and gate.agreement == 0.62
    assert shadow_gate(summary(500, 0.9), 0.85, 200).passed
