"""The guard model's prompt, its verdict parser, and fail-open / fail-closed (a fake `send` stands for the
network: the end-to-end test with a real deployment is the gateway's)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.guardrails.errors import PolicyViolation
from appliance.guardrails.guard_model import ask_guard, guard_prompt, parse_verdict

CONVERSATION = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "how do I bake bread?"},
                {"role": "assistant", "content": "Mix flour and water."}]


def test_prompt_is_llama_guards() -> None:
    [message] = guard_prompt(CONVERSATION, "output")
    text = message["content"]
    assert message["role"] == "user"
    assert "unsafe content in 'Agent' messages" in text and "S1: Violent Crimes." in text
    assert "User: how do I bake bread?\n\nAgent: Mix flour and water." in text and "be nice" not in text
    assert "ONLY THE LAST Agent message" in text and "First line must read 'safe' or 'unsafe'." in text
    custom = guard_prompt(CONVERSATION[:2], "input", {"C1": "Competitors."})[0]["content"]
    assert "C1: Competitors." in custom and "S1" not in custom and "LAST User message" in custom


@pytest.mark.parametrize(("answer", "safe", "categories"), [
    ("safe", True, ()),
    ("  Safe.\n", True, ()),
    ("\n\nunsafe\nS1,S10", False, ("S1", "S10")),
    ("UNSAFE\n s2 , s11 \n", False, ("S2", "S11")),
    ("unsafe", False, ()),
    ("unsafe S9 (weapons)", False, ("S9",)),
    ("I think this is fine", None, ()),
    ("", None, ()),
    ("safety first", None, ()),
])
def test_verdicts(answer: str, safe: bool | None, categories: tuple[str, ...]) -> None:
    verdict = parse_verdict(answer)
    assert (verdict.safe, verdict.categories) == (safe, categories)


def _ask(send_answer: object, on_error: str = "fail-closed", timeout_s: float = 0.5):  # type: ignore[no-untyped-def]
    async def send(messages: list[dict[str, str]]) -> str:
        assert "LAST User message" in messages[0]["content"]
        if isinstance(send_answer, BaseException):
            raise send_answer
        if send_answer == "hang":
            await asyncio.sleep(10)
        return str(send_answer)

    return asyncio.run(ask_guard(send, CONVERSATION[:2], "input", timeout_s, on_error))  # type: ignore[arg-type]


@pytest.mark.parametrize(("answer", "on_error", "allowed", "reason"), [
    ("safe", "fail-closed", True, "safe"),
    ("unsafe\nS2", "fail-open", False, "unsafe"),  # a verdict is a verdict whatever on_error says
    ("hang", "fail-open", True, "timeout"),
    ("hang", "fail-closed", False, "timeout"),
    (ConnectionError("down"), "fail-open", True, "error"),
    (ConnectionError("down"), "fail-closed", False, "error"),
    ("no idea", "fail-open", True, "unknown"),
    ("no idea", "fail-closed", False, "unknown"),
])
def test_fail_open_and_closed(answer: object, on_error: str, allowed: bool, reason: str) -> None:
    decision = _ask(answer, on_error, timeout_s=0.05)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_a_refused_decision_is_a_policy_violation() -> None:
    decision = _ask("unsafe\nS1")
    with pytest.raises(PolicyViolation) as caught:
        decision.raise_if_refused("input")
    assert (caught.value.rule, caught.value.reason, caught.value.code) == ("guard", "unsafe",
                                                                           "content_policy_violation")
    assert "S1" in caught.value.message
    _ask("safe").raise_if_refused("input")
