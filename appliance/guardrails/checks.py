"""A policy applied to request bodies and whole answers, as the gateway holds them (parsed JSON): limits, deny
rules and redaction of the input before the model sees it; deny rules and redaction of a non-streamed answer.
Refusals raise PolicyViolation; a body that was rewritten is a new dict (the original is left as it was)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from appliance.guardrails.engine import Guardrails
from appliance.guardrails.errors import PolicyViolation

TokenCounter = Callable[[str], int]
BYTES_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Tokens in `text` without the model's tokenizer: one per 4 bytes of UTF-8, rounded up (about what the
    vocabularies served give for English; fewer bytes a token in other scripts, so a limit there is looser).
    Pass the backend's own count instead where the gateway has it."""
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN)


@dataclass(frozen=True)
class Checked:
    """The body to send on, and whether it differs from the one received (then serialise it again)."""

    body: dict[str, Any]
    changed: bool


def _texts(body: dict[str, Any]) -> Iterator[tuple[dict[str, Any] | list[Any], str | int, str]]:
    """Where each prompt text sits: (container, key, text) for message contents, text parts and prompts."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content", content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text", part["text"]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        yield body, "prompt", prompt
    elif isinstance(prompt, list):
        for i, item in enumerate(prompt):
            if isinstance(item, str):
                yield prompt, i, item


def _check_limits(guardrails: Guardrails, body: dict[str, Any], count_tokens: TokenCounter) -> dict[str, Any] | None:
    """Raise on a limit passed; returns the answer-token setting to add when the request has none."""
    limits = guardrails.policy.limits
    messages = body.get("messages")
    if limits.max_messages is not None and isinstance(messages, list) and len(messages) > limits.max_messages:
        raise PolicyViolation("limits.max_messages", "input", "limit",
                              f"{len(messages)} messages, more than {limits.max_messages}")
    if limits.max_prompt_tokens is not None:
        tokens = sum(count_tokens(text) for _, _, text in _texts(body))
        if tokens > limits.max_prompt_tokens:
            raise PolicyViolation("limits.max_prompt_tokens", "input", "limit",
                                  f"about {tokens} prompt tokens, more than {limits.max_prompt_tokens}")
    if limits.max_answer_tokens is None:
        return None
    asked = [body[k] for k in ("max_completion_tokens", "max_tokens") if isinstance(body.get(k), int)]
    if not asked:
        return {"max_tokens": limits.max_answer_tokens}
    if max(asked) > limits.max_answer_tokens:
        raise PolicyViolation("limits.max_answer_tokens", "input", "limit",
                              f"{max(asked)} answer tokens asked, more than {limits.max_answer_tokens}")
    return None


def check_request(guardrails: Guardrails, body: dict[str, Any],
                  count_tokens: TokenCounter = estimate_tokens) -> Checked:
    """Apply the input side of the policy to a chat or completion request body.

    Raises PolicyViolation (limits, deny rules). Returns the body with input entities masked and, where the policy
    limits answers and the request set no limit, `max_tokens` added."""
    extra = _check_limits(guardrails, body, count_tokens)
    changed = extra is not None
    out = {**body, **(extra or {})}
    if not guardrails.active("input"):
        return Checked(out, changed)
    rewritten = copy.deepcopy(out)
    for container, key, text in _texts(rewritten):
        checked = guardrails.check(text, "input")
        if checked != text:
            container[key] = checked  # type: ignore[index]
            changed = True
    return Checked(rewritten if changed else body, changed)


def check_answer(guardrails: Guardrails, body: dict[str, Any]) -> Checked:
    """Apply the output side of the policy to a whole (non-streamed) chat or completion answer.

    Raises PolicyViolation if a deny rule matches any choice; returns the answer with output entities masked."""
    if not guardrails.active("output"):
        return Checked(body, False)
    rewritten = copy.deepcopy(body)
    changed = False
    for choice in rewritten.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        container: dict[str, Any] = message if isinstance(message, dict) else choice
        key = "content" if container is message else "text"
        text = container.get(key)
        if isinstance(text, str):
            checked = guardrails.check(text, "output")
            if checked != text:
                container[key] = checked
                changed = True
        if choice.get("logprobs"):
            choice["logprobs"] = None  # they spell out the tokens, masked values too
            changed = True
    return Checked(rewritten if changed else body, changed)
