"""The shadow gate: a switch to a candidate may require that its shadow agreed with the live deployment on real
traffic, a mean agreement of at least `min_agreement` over at least `min_pairs` pairs. Refused with the figures
otherwise (409 `shadow_gate_failed`); forcible with a reason, audited, as the eval gate."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from appliance.errors import Conflict
from appliance.trials.models import ShadowSummary


class ShadowGate(BaseModel):
    """The gate's figures, for the refusal, the audit line and the switch's history."""

    live: str
    candidate: str
    pairs: int
    agreement: float | None = Field(None, description="Mean agreement of the shadow's newest pairs")
    exact_rate: float | None = None
    candidate_refusals: int = 0
    live_refusals: int = 0
    min_agreement: float
    min_pairs: int
    passed: bool
    reason: str

    def figures(self) -> dict[str, Any]:
        return {"shadow": f"{self.live} ← {self.candidate}", "pairs": self.pairs, "agreement": self.agreement,
                "exact_rate": self.exact_rate, "candidate_refusals": self.candidate_refusals,
                "live_refusals": self.live_refusals, "min_agreement": self.min_agreement,
                "min_pairs": self.min_pairs, "passed": self.passed, "reason": self.reason}


class ShadowGateFailed(Conflict):
    """The candidate's shadow does not meet the gate; nothing changed. Carries the gate's figures."""

    status, code = 409, "shadow_gate_failed"

    def __init__(self, gate: ShadowGate) -> None:
        super().__init__(f"shadow gate: {gate.candidate} against {gate.live}: {gate.reason}. Nothing changed; pass "
                         "force with a reason to switch anyway (audited)")
        self.gate = gate


def judge(summary: ShadowSummary, min_agreement: float, min_pairs: int) -> tuple[bool, str]:
    """Whether the shadow passes, and why, with the numbers."""
    need = f"needs ≥ {min_agreement:.2f} over ≥ {min_pairs} pairs"
    if summary.pairs < min_pairs or summary.agreement_mean is None:
        kept = f"; the shadow keeps at most {summary.keep}: lower min_pairs" if min_pairs > summary.keep else ""
        return False, f"{summary.pairs} shadow pairs, fewer than {min_pairs} ({need}){kept}"
    agreement = summary.agreement_mean
    if agreement < min_agreement:
        return False, f"agreement {agreement:.3f} over {summary.pairs} pairs, below {min_agreement:.2f} ({need})"
    return True, f"agreement {agreement:.3f} over {summary.pairs} pairs ({need})"


def shadow_gate(summary: ShadowSummary, min_agreement: float, min_pairs: int) -> ShadowGate:
    """The gate's figures for one shadow summary (raise `ShadowGateFailed(gate)` when not `passed` and not
    forced)."""
    passed, reason = judge(summary, min_agreement, min_pairs)
    return ShadowGate(live=summary.live, candidate=summary.candidate, pairs=summary.pairs,
                      agreement=summary.agreement_mean, exact_rate=summary.exact_rate,
                      candidate_refusals=sum(summary.candidate_refusals.values()),
                      live_refusals=sum(summary.live_refusals.values()), min_agreement=min_agreement,
                      min_pairs=min_pairs, passed=passed, reason=reason)


def check(summary: ShadowSummary, min_agreement: float, min_pairs: int, *, force: bool = False) -> ShadowGate:
    """The gate, raising when it fails and is not forced (the caller audits the figures either way).

    Raises:
        ShadowGateFailed (409): not passed and not `force`.
    """
    gate = shadow_gate(summary, min_agreement, min_pairs)
    if not gate.passed and not force:
        raise ShadowGateFailed(gate)
    return gate
