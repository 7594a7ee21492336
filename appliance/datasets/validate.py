"""Conversation rules and token lengths.

Role order: an optional system message first, then user and assistant alternating, starting with user and
ending with assistant. A tool message answers an assistant's tool call, so it may follow only an assistant or
another tool message, and the next non-tool message must be the assistant's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from appliance.datasets.errors import RecordDefect
from appliance.datasets.shapes import Message

ROLES = ("system", "user", "assistant", "tool")
# Which roles may follow each role; None is the start of the conversation.
ALLOWED_AFTER: dict[str | None, tuple[str, ...]] = {
    None: ("system", "user"),
    "system": ("user",),
    "user": ("assistant",),
    "assistant": ("user", "tool"),
    "tool": ("tool", "assistant"),
}
# Template tokens around each message (<|im_start|>role\n ... <|im_end|>\n) for the estimate.
ESTIMATE_PER_MESSAGE = 4


class ChatTokenizer(Protocol):
    """What we need of a transformers tokenizer."""

    def apply_chat_template(self, conversation: list[Message], /, *, tokenize: bool) -> Any: ...


def check_roles(messages: list[Message]) -> None:
    """Raises RecordDefect naming the first message that breaks the role order."""
    previous: str | None = None
    for index, message in enumerate(messages, start=1):
        role = message["role"]
        if role not in ROLES:
            raise RecordDefect(f"unknown role {role!r} in message {index}; expected one of {', '.join(ROLES)}")
        if role not in ALLOWED_AFTER[previous]:
            raise RecordDefect(_order_defect(role, previous, index))
        previous = role
    if previous != "assistant":
        raise RecordDefect(f"wrong role order: ends with {previous!r}; the last message must be 'assistant'")


def check_answer(prompt: list[Message], answer: list[Message], field: str) -> None:
    """A prompt (ending with the user's turn) and one answer to it (the assistant's messages, tool results
    between them), as preference and KTO records hold them.

    Raises:
        RecordDefect: the prompt does not end with 'user', the answer holds another role, or the conversation
        they make breaks the role order.
    """
    if prompt[-1]["role"] != "user":
        raise RecordDefect(f"field 'prompt' must end with a 'user' message (it ends with {prompt[-1]['role']!r})")
    for index, message in enumerate(answer, start=1):
        if message["role"] not in ("assistant", "tool"):
            raise RecordDefect(f"field {field!r}: message {index} is {message['role']!r}; an answer holds only "
                               "'assistant' (and 'tool') messages")
    try:
        check_roles([*prompt, *answer])
    except RecordDefect as defect:
        raise RecordDefect(f"prompt + {field}: {defect}") from None


def _order_defect(role: str, previous: str | None, index: int) -> str:
    if role == "system":
        return f"wrong role order: 'system' is only allowed as the first message (message {index})"
    if previous in (None, "system"):
        return f"wrong role order: {role!r} before any 'user'"
    return f"wrong role order: {role!r} after {previous!r} (message {index})"


class TokenCounter:
    """Token length of a conversation as training will see it: through the chat template when a tokenizer is
    given, else a rough whitespace estimate (words × 4/3 plus a few template tokens per message)."""

    def __init__(self, tokenizer: ChatTokenizer | None) -> None:
        self.tokenizer = tokenizer
        self.exact = tokenizer is not None
        self.label = (
            "chat template of the given tokenizer" if self.exact
            else "whitespace estimate (no tokenizer given): words × 4/3 + 4 per message"
        )

    def count(self, messages: list[Message]) -> int:
        if self.tokenizer is None:
            words = sum(len(m["content"].split()) for m in messages)
            return math.ceil(words * 4 / 3) + ESTIMATE_PER_MESSAGE * len(messages)
        try:
            result = self.tokenizer.apply_chat_template(messages, tokenize=True)
        except Exception as exc:  # jinja templates raise their own errors, e.g. "roles must alternate"
            raise RecordDefect(f"the chat template refused it: {exc}") from exc
        return _length(result)

    def check(self, tokens: int, max_seq_length: int | None) -> None:
        if max_seq_length is not None and tokens > max_seq_length:
            what = "tokens after the chat template" if self.exact else "tokens (whitespace estimate)"
            raise RecordDefect(f"{tokens} {what}, over the profile's max_seq_length {max_seq_length}")


def _length(result: Any) -> int:
    # transformers 4 returns a list of ids; 5 returns a BatchEncoding (a Mapping) holding input_ids.
    if isinstance(result, Mapping):
        result = result["input_ids"]
    if hasattr(result, "shape"):  # a numpy array or tensor
        return int(result.shape[-1])
    ids = list(result)
    if ids and isinstance(ids[0], list | tuple):
        ids = list(ids[0])
    return len(ids)
