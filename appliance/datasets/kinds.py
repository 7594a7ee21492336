"""Record kinds: what one record of a dataset holds, how it is checked, and the line a version stores for it.

- `sft` (the default): a chat conversation in any shape `shapes.normalize` reads; stored as `{"messages"}`.
- `preference`: `prompt`, `chosen`, `rejected`. The prompt is a string (one user message) or messages ending
  with the user's turn; each answer is a string (one assistant message) or the assistant's messages (tool
  results between them). Stored as message lists (the conversational preference format of TRL's DPO trainer),
  so a string and its one-message form are the same record for dedup and for the version id.
- `kto`: `prompt`, `completion` (as above) and `label`: true for a desirable answer, false for an undesirable
  one (a CSV cell may hold `true`/`false`).

Any kind may carry `metadata`, a JSON object (the lineage of a captured item, say): stored with the record as
it is, never part of validation, dedup or the split's ranking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.datasets.errors import DatasetError, RecordDefect
from appliance.datasets.formats import json_type
from appliance.datasets.shapes import Message, chat, normalize
from appliance.datasets.validate import check_answer, check_roles

KINDS = ("sft", "preference", "kto")
DEFAULT_KIND = "sft"
Record = dict[str, Any]


@dataclass(frozen=True)
class Parsed:
    shape: str  # counted in the report, e.g. "alpaca", "preference_text"
    record: Record  # the line the version stores
    conversations: tuple[list[Message], ...]  # each as training sees it: checked against max_seq_length
    text: list[Message]  # what dedup compares


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(KINDS)}", param="kind")


def parse(kind: str, fields: dict[str, Any]) -> Parsed:
    """One raw record of a dataset of `kind`, checked.

    Raises:
        RecordDefect: a field is missing, of the wrong type, or the conversation breaks the role order.
    """
    metadata = _metadata(fields)
    if kind == "preference":
        parsed = _preference(fields)
    elif kind == "kto":
        parsed = _kto(fields)
    else:
        shape, messages = normalize(fields)
        check_roles(messages)
        parsed = Parsed(shape, {"messages": messages}, (messages,), messages)
    if metadata is not None:
        parsed.record["metadata"] = metadata
    return parsed


def _preference(fields: dict[str, Any]) -> Parsed:
    prompt, listed = _turns(fields, "prompt", "user")
    chosen, _ = _turns(fields, "chosen", "assistant")
    rejected, _ = _turns(fields, "rejected", "assistant")
    check_answer(prompt, chosen, "chosen")
    check_answer(prompt, rejected, "rejected")
    if chosen == rejected:
        raise RecordDefect("'chosen' and 'rejected' are the same answer")
    text = [*prompt, _joined("chosen", chosen), _joined("rejected", rejected)]
    record = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    return Parsed(f"preference_{listed}", record, ([*prompt, *chosen], [*prompt, *rejected]), text)


def _kto(fields: dict[str, Any]) -> Parsed:
    prompt, listed = _turns(fields, "prompt", "user")
    completion, _ = _turns(fields, "completion", "assistant")
    check_answer(prompt, completion, "completion")
    label = _label(fields.get("label"))
    text = [*prompt, *completion, {"role": "label", "content": json.dumps(label)}]
    record = {"prompt": prompt, "completion": completion, "label": label}
    return Parsed(f"kto_{listed}", record, ([*prompt, *completion],), text)


def _turns(fields: dict[str, Any], field: str, role: str) -> tuple[list[Message], str]:
    """Field `field` as messages, and "text" or "messages" (how the record gave it); a string is one message
    of `role`. A CSV cell that holds a JSON list of objects is read as messages."""
    value = fields.get(field)
    if value is None:
        raise RecordDefect(f"missing field {field!r}")
    if isinstance(value, str) and not _json_messages(value):
        if not value.strip():
            raise RecordDefect(f"empty field {field!r}")
        return [{"role": role, "content": value}], "text"
    if not isinstance(value, str | list):
        raise RecordDefect(f"field {field!r} must be text or a list of messages, got {json_type(value)}")
    try:
        return chat(value, field), "messages"
    except RecordDefect as defect:
        text = str(defect)
        raise RecordDefect(text if repr(field) in text else f"field {field!r}: {text}") from None


def _json_messages(value: str) -> bool:
    if not value.lstrip().startswith("[{"):
        return False
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return False
    return isinstance(parsed, list) and all(isinstance(item, dict) for item in parsed)


def _joined(role: str, messages: list[Message]) -> Message:
    return {"role": role, "content": "\n".join(m["content"] for m in messages)}


def _label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None:
        raise RecordDefect("missing field 'label'")
    raise RecordDefect(f"field 'label' must be true or false, got {json_type(value)}")


def _metadata(fields: dict[str, Any]) -> dict[str, Any] | None:
    value = fields.get("metadata")
    if isinstance(value, str) and value.lstrip().startswith("{"):  # a CSV cell holds it as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordDefect(f"field 'metadata' is not valid JSON: {exc.msg} (column {exc.colno})") from exc
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise RecordDefect(f"field 'metadata' must be an object, got {json_type(value)}")
    return value
