"""What the live watch judges and how: its settings (profile defaults, overridable per deployment) and the
verdict on one watch, a candidate's outcomes against a baseline's, rule by rule with the numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.errors import BadRequest
from appliance.trials.canary import SideFigures
from appliance.validation import where_and_why

Rule = Literal["error_rate", "p95_latency", "guardrail_blocks", "thumbs_down"]
Kind = Literal["canary", "switch"]


class WatchSettings(BaseModel):
    """How a new version is watched on live traffic: during a canary, and for `window_s` after a switch. A
    threshold set to null turns its rule off."""

    model_config = ConfigDict(extra="forbid")

    auto_rollback: bool = Field(True, description="Roll back on a regression (false: report and alert only)")
    window_s: float = Field(900.0, gt=0.0, le=86_400.0, description="Seconds of traffic compared: the canary's "
                            "sliding window; after a switch, how long the new version is watched, against the same "
                            "span before the switch")
    min_requests: int = Field(50, ge=1, description="Requests each side needs in the window before the error, "
                              "latency and block rules judge")
    max_error_rate_increase: float | None = Field(0.05, ge=0.0, le=1.0, description="Largest allowed rise of the "
                                                  "error rate (5xx, backend and stream errors), 0 to 1")
    max_p95_ratio: float | None = Field(1.5, ge=1.0, description="Largest allowed p95 latency, as a multiple of "
                                        "the baseline's")
    max_block_rate_increase: float | None = Field(0.05, ge=0.0, le=1.0, description="Largest allowed rise of the "
                                                  "share of requests a guardrail blocked, 0 to 1")
    max_thumbs_down_increase: float | None = Field(0.15, ge=0.0, le=1.0, description="Largest allowed rise of the "
                                                   "thumbs-down share of the rated answers, 0 to 1")
    min_feedback: int = Field(20, ge=1, description="Rated answers each side needs before the thumbs rule judges")


def merge(profile_defaults: WatchSettings, overrides: Mapping[str, Any] | None) -> WatchSettings:
    """A deployment's settings: the profile's defaults with its overrides on top, validated as a whole.

    Raises:
        BadRequest (param `watch.<field>`): an unknown field or a value out of range.
    """
    try:
        return WatchSettings.model_validate({**profile_defaults.model_dump(), **(overrides or {})})
    except ValidationError as exc:
        where, why = where_and_why(exc)
        raise BadRequest(f"watch.{where}: {why}", param=f"watch.{where}", code="invalid_parameter") from exc


class Check(BaseModel):
    """One rule on one verdict: both sides' values, the change seen, the limit, and whether it was exceeded."""

    rule: Rule
    candidate: float | None
    baseline: float | None
    change: float | None = Field(None, description="Candidate minus baseline (a ratio for p95_latency)")
    limit: float | None = Field(None, description="The allowed change; null: the rule is off")
    judged: bool
    exceeded: bool = False
    note: str = ""


class Verdict(BaseModel):
    """A watch's verdict at one moment: both sides' figures side by side and each rule's check."""

    deployment: str
    kind: Kind
    candidate_arm: str
    baseline_arm: str
    since: float
    until: float
    candidate: SideFigures
    baseline: SideFigures
    checks: list[Check]
    regressed: bool
    reasons: list[str] = Field(default_factory=list, description="Each exceeded rule, in words with the numbers")
    rolled_back: bool = False

    @property
    def reason(self) -> str:
        """The first exceeded rule (the rollback counter's label), "" when none."""
        return next((c.rule for c in self.checks if c.exceeded), "")

    def figures(self) -> dict[str, Any]:
        """For the audit line of a rollback: what triggered it and both sides' numbers."""
        return {"kind": self.kind, "candidate": self.candidate_arm, "baseline": self.baseline_arm,
                "window": [round(self.since, 3), round(self.until, 3)], "reasons": self.reasons,
                "candidate_figures": self.candidate.model_dump(), "baseline_figures": self.baseline.model_dump()}


def _increase(rule: Rule, cand: float | None, base: float | None, limit: float | None, enough: str) -> Check:
    if limit is None or enough or cand is None or base is None:
        note = "rule off" if limit is None else enough or "no figure"
        return Check(rule=rule, candidate=cand, baseline=base, limit=limit, judged=False, note=note)
    change = cand - base
    return Check(rule=rule, candidate=cand, baseline=base, change=round(change, 6), limit=limit, judged=True,
                 exceeded=change > limit)


def _ratio(cand: float | None, base: float | None, limit: float | None, enough: str) -> Check:
    if limit is None or enough or cand is None or not base:
        note = "rule off" if limit is None else enough or "no latency to compare"
        return Check(rule="p95_latency", candidate=cand, baseline=base, limit=limit, judged=False, note=note)
    ratio = cand / base
    return Check(rule="p95_latency", candidate=cand, baseline=base, change=round(ratio, 4), limit=limit,
                 judged=True, exceeded=ratio > limit)


def _shortfall(cand: int, base: int, need: int, what: str) -> str:
    short = [f"{side} {have} of {need} {what}" for side, have in (("candidate", cand), ("baseline", base))
             if have < need]
    return "; ".join(short)


def _words(check: Check) -> str:
    if check.rule == "p95_latency":
        return (f"p95 latency {check.candidate:.3f}s is {check.change:.2f}× the baseline's {check.baseline:.3f}s "
                f"(limit {check.limit:.2f}×)")
    label = {"error_rate": "error rate", "guardrail_blocks": "guardrail block rate",
             "thumbs_down": "thumbs-down rate"}[check.rule]
    return (f"{label} {check.candidate:.3f} against {check.baseline:.3f}, up {check.change:.3f} "
            f"(limit {check.limit:.3f})")


def judge(settings: WatchSettings, candidate: SideFigures, baseline: SideFigures) -> tuple[list[Check], list[str]]:
    """Each rule's check, and the exceeded ones in words. The error, latency and block rules need
    `min_requests` on each side, the thumbs rule `min_feedback` rated answers on each side."""
    requests = _shortfall(candidate.requests, baseline.requests, settings.min_requests, "requests")
    rated = _shortfall(candidate.rated, baseline.rated, settings.min_feedback, "rated answers")
    checks = [
        _increase("error_rate", candidate.error_rate, baseline.error_rate, settings.max_error_rate_increase,
                  requests),
        _ratio(candidate.p95_latency_s, baseline.p95_latency_s, settings.max_p95_ratio, requests),
        _increase("guardrail_blocks", candidate.block_rate, baseline.block_rate, settings.max_block_rate_increase,
                  requests),
        _increase("thumbs_down", candidate.thumbs_down_rate, baseline.thumbs_down_rate,
                  settings.max_thumbs_down_increase, rated),
    ]
    return checks, [_words(c) for c in checks if c.exceeded]
