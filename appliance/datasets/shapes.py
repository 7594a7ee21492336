"""Normalize the common record shapes to one chat conversation: a list of {"role", "content"} messages.

Shapes: chat `messages` (OpenAI style), instruction style (Alpaca: instruction/input/output; Dolly:
instruction/context/response), and prompt/completion. An optional `system` field becomes a system message.
Role order is not checked here (validate.py does that), only that the fields exist and hold text.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.datasets.errors import RecordDefect
from appliance.datasets.formats import json_type

Message = dict[str, str]


def normalize(fields: dict[str, Any]) -> tuple[str, list[Message]]:
    """The record's shape name and its conversation.

    Raises:
        RecordDefect: a required field is missing, empty or not text.
    """
    if fields.get("messages") is not None:
        return "messages", chat(fields["messages"])
    if "instruction" in fields:
        return _instruction(fields)
    if "prompt" in fields or "completion" in fields:
        user, answer = text(fields, "prompt"), text(fields, "completion")
        return "prompt_completion", [*_system(fields), _msg("user", user), _msg("assistant", answer)]
    found = ", ".join(repr(k) for k in list(fields)[:8]) or "none"
    raise RecordDefect(f"unrecognized record: expected 'messages', 'instruction' or 'prompt' fields (found: {found})")


def _msg(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def text(fields: dict[str, Any], key: str, *, required: bool = True) -> str:
    """The text of field `key` ("" when absent and not `required`).

    Raises:
        RecordDefect: missing or empty while required, or not text.
    """
    value = fields.get(key)
    if value is None:
        if required:
            raise RecordDefect(f"missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise RecordDefect(f"field {key!r} must be text, got {json_type(value)}")
    if required and not value.strip():
        raise RecordDefect(f"empty field {key!r}")
    return value


def _system(fields: dict[str, Any]) -> list[Message]:
    system = text(fields, "system", required=False)
    return [_msg("system", system)] if system.strip() else []


def _instruction(fields: dict[str, Any]) -> tuple[str, list[Message]]:
    instruction = text(fields, "instruction")
    extra = text(fields, "input", required=False)
    if not extra.strip():  # Dolly calls it context
        extra = text(fields, "context", required=False)
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    dolly = fields.get("output") is None and "response" in fields
    answer = text(fields, "response" if dolly else "output")
    return ("dolly" if dolly else "alpaca"), [*_system(fields), _msg("user", user), _msg("assistant", answer)]


def chat(value: Any, field: str = "messages") -> list[Message]:
    """A list of OpenAI-style messages (or its JSON text, as a CSV cell holds it) as plain {role, content} text.

    Raises:
        RecordDefect: not a list of messages with a role and text content; the message names `field`.
    """
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        if not value.strip():
            raise RecordDefect(f"empty field {field!r}")
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordDefect(f"field {field!r} is not valid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(value, list):
        raise RecordDefect(f"field {field!r} must be a list of messages, got {json_type(value)}")
    if not value:
        raise RecordDefect(f"empty field {field!r}")
    messages = []
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise RecordDefect(f"message {index} must be an object, got {json_type(item)}")
        role = item.get("role")
        if not isinstance(role, str) or not role:
            raise RecordDefect(f"message {index}: missing field 'role'")
        content = _content(item.get("content"), index)
        messages.append(_msg(role, content))
    return messages


def _content(value: Any, index: int) -> str:
    if isinstance(value, list):  # OpenAI content parts: only text parts can be trained on
        texts = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else json_type(part)
            if kind != "text" or not isinstance(part.get("text"), str):
                raise RecordDefect(f"message {index}: content part of type {kind!r} is not text")
            texts.append(part["text"])
        value = "".join(texts)
    if value is None:
        raise RecordDefect(f"message {index}: missing field 'content'")
    if not isinstance(value, str):
        raise RecordDefect(f"message {index}: field 'content' must be text, got {json_type(value)}")
    if not value.strip():
        raise RecordDefect(f"message {index}: empty field 'content'")
    return value
