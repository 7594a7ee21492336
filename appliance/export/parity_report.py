"""What the parity gate found, as data: per-check results, the near-ties it accepted, the greedy answers the
exports were held to, and the summary the operator reads (written to the export's parity.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

NEAR_TIE_NATS = 0.02


class Divergence(BaseModel):
    prompt: str
    position: int  # index of the first differing generated token
    expected_text: str  # the reference around it, the differing part in [brackets]
    got_text: str


class NearTie(Divergence):
    """A flip between two tokens that both models rate within NEAR_TIE_NATS of each other."""

    reference_margin: float  # the reference's top-1 minus its top-2 log-probability
    candidate_margin: float  # the export's top-1 minus its log-probability of the reference token


class ExactCheck(BaseModel):
    name: str
    gating: bool
    prompts: int
    matched_prompts: int  # including those whose only differences are near-ties
    tokens: int
    divergence: Divergence | None = None
    near_ties: list[NearTie] = []

    @property
    def passed(self) -> bool:
        return self.matched_prompts == self.prompts


class AgreementCheck(BaseModel):
    variant: str
    positions: int
    top1_agreement: float
    mean_logprob_gap: float
    min_top1: float
    max_gap: float
    first_disagreement: Divergence | None = None

    @property
    def passed(self) -> bool:
        return self.top1_agreement >= self.min_top1 and self.mean_logprob_gap <= self.max_gap


class Answer(BaseModel):
    prompt: str
    merged: str
    peft: str


class ParityReport(BaseModel):
    max_new_tokens: int
    exact: list[ExactCheck]
    agreement: list[AgreementCheck]
    answers: list[Answer] = []  # the greedy texts the exports were held to

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.exact if c.gating) and all(c.passed for c in self.agreement)

    def figures(self) -> dict[str, Any]:
        return {c.variant: {"top1_agreement": c.top1_agreement, "mean_logprob_gap": c.mean_logprob_gap,
                            "positions": c.positions, "passed": c.passed} for c in self.agreement}

    def summary(self) -> str:
        lines = []
        for check in self.exact:
            state = "ok" if check.passed else "FAILED" if check.gating else "differs (not gating)"
            ties = f" ({len(check.near_ties)} near-tie{'s' * (len(check.near_ties) != 1)} accepted)" \
                if check.near_ties else ""
            lines.append(f"{check.name}: {check.matched_prompts}/{check.prompts} prompts token-exact{ties}, {state}")
            if check.divergence:
                lines.append(_describe(check.divergence))
            for tie in check.near_ties:
                lines.append(_describe(tie) + f"\n    near-tie: reference margin {tie.reference_margin:.4f}, "
                                              f"export margin {tie.candidate_margin:.4f} nats (< {NEAR_TIE_NATS})")
        for agree in self.agreement:
            lines.append(f"{agree.variant}: top-1 agreement {agree.top1_agreement:.4f} (min {agree.min_top1}), mean "
                         f"logprob gap {agree.mean_logprob_gap:.4f} (max {agree.max_gap}) over {agree.positions} "
                         f"positions, {'ok' if agree.passed else 'FAILED'}")
            if agree.first_disagreement and not agree.passed:
                lines.append(_describe(agree.first_disagreement))
        return "\n".join(lines)


def _describe(div: Divergence) -> str:
    return (f"  prompt {div.prompt!r}: diverges at generated token {div.position}\n"
            f"    expected: {div.expected_text!r}\n    got:      {div.got_text!r}")
