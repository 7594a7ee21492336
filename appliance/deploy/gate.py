"""Checks a blue/green candidate passes before it takes the name: a smoke prompt, and the eval gate (the golden
set answered greedily by the candidate and by the live deployment, each through its own backend, so what is
judged is exactly what would serve)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import BaseModel, Field

from appliance.backends.process import BackendProcess
from appliance.errors import ApplianceError
from appliance.evaluation.golden import GoldenItem, GoldenReport, forgotten, make_report

SMOKE_PROMPT = "Reply with one word: ready?"
ANSWER_TOKENS = 64
CONCURRENT_PROMPTS = 4


class GateFailed(ApplianceError):
    """The candidate did not pass; the message says what failed."""


class EvalGate(BaseModel):
    golden: str = Field(..., description="Where the golden items came from")
    live_model: str
    candidate_model: str
    live: GoldenReport
    candidate: GoldenReport
    regressed: bool
    reason: str
    forgotten: list[str] = Field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {"golden": self.golden, "live": f"{self.live_model}: {self.live.summary()}",
                "candidate": f"{self.candidate_model}: {self.candidate.summary()}", "regressed": self.regressed,
                "reason": self.reason, "forgotten": self.forgotten}


async def chat(process: BackendProcess, messages: list[dict[str, str]],
               max_tokens: int, extra: dict[str, Any] | None = None) -> str:
    """One greedy chat completion straight to a backend (not through the gateway).

    Raises:
        GateFailed: the backend did not answer 200 with a message.
    """
    body = {"model": process.spec.deployment, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0,
            "seed": 0, **(extra or {})}
    try:
        response = await process.client.post(f"{process.endpoint}/v1/chat/completions", json=body, timeout=120.0,
                                             headers=process.spec.auth_headers())
        data = response.json()
        if response.status_code != 200:
            raise GateFailed(f"backend answered {response.status_code}: {str(data)[:300]}")
        return str(data["choices"][0]["message"].get("content") or "")
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise GateFailed(f"no usable answer from the backend: {type(exc).__name__}: {exc}") from exc


async def smoke_test(process: BackendProcess) -> str:
    return await chat(process, [{"role": "user", "content": SMOKE_PROMPT}], 8)


async def golden_answers(process: BackendProcess, items: list[GoldenItem],
                         extra: dict[str, Any] | None = None, max_tokens: int = ANSWER_TOKENS) -> list[str]:
    limit = asyncio.Semaphore(CONCURRENT_PROMPTS)

    async def one(item: GoldenItem) -> str:
        async with limit:
            return await chat(process, item.messages(), max_tokens, extra)

    return list(await asyncio.gather(*(one(item) for item in items)))


def judge(live: GoldenReport, candidate: GoldenReport) -> tuple[bool, str]:
    """A regression is fewer task items passed than the live model; with no task items (built-in general set
    only), fewer general items. Forgotten general prompts of a task-set run are reported, not blocking: a
    fine-tune for a narrow task is expected to trade some of them."""
    if live.task_total:
        if candidate.task_passed < live.task_passed:
            return True, f"task items passed fell from {live.task_passed} to {candidate.task_passed}" \
                         f" of {live.task_total}"
        return False, f"task items passed {live.task_passed} → {candidate.task_passed} of {live.task_total}"
    if candidate.general_passed < live.general_passed:
        return True, f"general items passed fell from {live.general_passed} to {candidate.general_passed}" \
                     f" of {live.general_total}"
    return False, f"general items passed {live.general_passed} → {candidate.general_passed} of {live.general_total}"


async def eval_gate(live: BackendProcess, candidate: BackendProcess,
                    items: list[GoldenItem], golden: str, live_model: str, candidate_model: str) -> EvalGate:
    # One backend at a time: two llama.cpp processes computing at once on the same cores stall each other at
    # every thread barrier (a 10-token answer took 25 s on 2 cores with both busy, under 1 s alone).
    live_answers = await golden_answers(live, items)
    candidate_answers = await golden_answers(candidate, items)
    live_report, candidate_report = make_report(items, live_answers), make_report(items, candidate_answers)
    regressed, reason = judge(live_report, candidate_report)
    return EvalGate(golden=golden, live_model=live_model, candidate_model=candidate_model, live=live_report,
                    candidate=candidate_report, regressed=regressed, reason=reason,
                    forgotten=forgotten(live_report, candidate_report))
