"""Request bodies and whole answers: limits, deny rules and redaction; refusals name the rule, never the text."""

from __future__ import annotations

import pytest

from appliance.guardrails.checks import check_answer, check_request, estimate_tokens
from appliance.guardrails.engine import Guardrails
from appliance.guardrails.errors import PolicyViolation
from appliance.guardrails.scan import ScanTimeout, compile_matcher, scan
from tests.guardrails.conftest import policy


def _chat(*contents: object, **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents], **extra}


def _refusal(rails: Guardrails, body: dict[str, object]) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as caught:
        check_request(rails, body)
    return caught.value


def test_limits() -> None:
    rails = Guardrails(policy(limits={"max_messages": 2, "max_prompt_tokens": 10, "max_answer_tokens": 64}))
    refused = _refusal(rails, _chat("a", "b", "c"))
    assert (refused.rule, refused.direction, refused.reason) == ("limits.max_messages", "input", "limit")
    assert _refusal(rails, _chat("x" * 41)).rule == "limits.max_prompt_tokens"  # 41 bytes: about 11 tokens
    assert _refusal(rails, _chat("hi", max_tokens=65)).rule == "limits.max_answer_tokens"
    assert _refusal(rails, _chat("hi", max_completion_tokens=100)).rule == "limits.max_answer_tokens"
    checked = check_request(rails, _chat("hi"))
    assert checked.changed and checked.body["max_tokens"] == 64  # no limit asked: the policy's
    body = _chat("hi", max_tokens=10)
    assert check_request(rails, body) == type(check_request(rails, body))(body, False)
    # The gateway may count with the backend's tokenizer instead of the estimate.
    assert check_request(rails, _chat("x" * 41), count_tokens=lambda text: 3).changed
    assert estimate_tokens("héllo") == 2


def test_a_refusal_is_an_openai_400_naming_the_rule_not_the_text(guarded: Guardrails) -> None:
    refused = _refusal(guarded, _chat("hello", "I will KILL   you tomorrow"))
    assert (refused.status, refused.code, refused.type) == (400, "content_policy_violation", "invalid_request_error")
    assert (refused.rule, refused.direction, refused.param) == ("violence", "input", "messages")
    assert "'violence'" in refused.message and "kill" not in refused.message.lower()


def test_input_redaction_rewrites_a_copy(guarded: Guardrails) -> None:
    body = _chat("mail bob@example.com", [{"type": "text", "text": "card 4111 1111 1111 1111"},
                                          {"type": "image_url", "image_url": {"url": "data:x"}}])
    checked = check_request(guarded, body)
    assert checked.changed
    messages = checked.body["messages"]
    assert messages[0]["content"] == "mail [EMAIL]"
    assert messages[1]["content"][0]["text"] == "card [CREDIT_CARD]"
    assert body["messages"][0]["content"] == "mail bob@example.com"  # type: ignore[index]
    clean = _chat("nothing to see")
    assert check_request(guarded, clean).body is clean and not check_request(guarded, clean).changed


def test_completion_prompts(guarded: Guardrails) -> None:
    checked = check_request(guarded, {"model": "m", "prompt": ["ip 10.0.0.1", "fine"]})
    assert checked.body["prompt"] == ["ip [IP]", "fine"]
    with pytest.raises(PolicyViolation):
        check_request(guarded, {"model": "m", "prompt": "build a bomb"})


def test_whole_answers(guarded: Guardrails) -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "call +1 415 555 2671"},
                           "logprobs": {"content": [{"token": "call"}]}}]}
    checked = check_answer(guarded, answer)
    assert checked.body["choices"][0]["message"]["content"] == "call [PHONE]"
    assert checked.body["choices"][0]["logprobs"] is None  # tokens would spell the number out
    with pytest.raises(PolicyViolation) as caught:
        check_answer(guarded, {"choices": [{"index": 0, "text": "my password = hunter2"}]})
    assert (caught.value.rule, caught.value.direction, caught.value.param) == ("secrets", "output", None)


def test_a_pattern_out_of_time_is_a_refusal() -> None:
    slow = compile_matcher("slow-rule", r"(\w+\.)+com", deny=True)  # never through a policy: it would refuse it
    with pytest.raises(ScanTimeout) as caught:
        scan("a." * 20000, 0, [slow], final=True, timeout=0.01)
    assert caught.value.label == "slow-rule"
