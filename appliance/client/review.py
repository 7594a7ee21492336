"""A captured item as a reviewer reads and edits it, for the CLI and the TUI alike. Pure functions over the
daemon's CaptureSummary and CaptureDetail JSON; the texts in them were redacted before they were stored."""

from __future__ import annotations

import json
from typing import Any

Json = dict[str, Any]
STATES = ("pending", "accepted", "edited", "rejected")


def rating(score: int | None, label: bool | None) -> str:
    """`up 5/5`, `down 1/5`, `3/5`, or `—` when the item was not rated."""
    if score is None and label is None:
        return "—"
    thumbs = None if label is None else "up" if label else "down"
    stars = f"{score}/5" if score is not None else ""
    return " ".join(part for part in (thumbs, stars) if part)


def conversation(detail: Json) -> list[Json]:
    """The conversation a review decides on: the reviewer's edit when there is one, else the captured messages
    followed by the captured answer."""
    edited = (detail.get("review") or {}).get("messages")
    if edited:
        return [{"role": m["role"], "content": m["content"]} for m in edited]
    item = detail["item"]
    messages = [{"role": m["role"], "content": m["content"]} for m in item["messages"]]
    return [*messages, {"role": "assistant", "content": item["answer"]}]


def answer_of(messages: list[Json]) -> str:
    """The text of the last assistant message ("" when there is none)."""
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "assistant"), "")


def with_answer(messages: list[Json], answer: str) -> list[Json]:
    """`messages` with the final assistant message's text replaced by `answer` (appended when the conversation
    does not end with one)."""
    out = [dict(m) for m in messages]
    if out and out[-1].get("role") == "assistant":
        out[-1]["content"] = answer
    else:
        out.append({"role": "assistant", "content": answer})
    return out


def parse_conversation(text: str) -> list[Json]:
    """A conversation written as JSON: a list of `{"role", "content"}` objects, or an object with `messages`.

    Raises:
        ValueError: not JSON, or not a non-empty list of messages with a role and text content.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    if not isinstance(value, list) or not value:
        raise ValueError('expected a list of messages: [{"role": "user", "content": "..."}, ...]')
    for number, message in enumerate(value, 1):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content", ""), str):
            raise ValueError(f"message {number}: needs a role and a text content")
    return [{"role": m["role"], "content": m.get("content", "")} for m in value]


def review_text(review: Json) -> str:
    """`pending`, or `accepted by alice` with the reviewer's note."""
    state = str(review.get("state", "pending"))
    if state != "pending" and review.get("reviewer"):
        state += f" by {review['reviewer']}"
    return state + (f" ({review['note']})" if review.get("note") else "")


def feedback_lines(feedback: Json | None) -> list[tuple[str, str]]:
    """(label, text) rows of an item's feedback; none at all when the app gave no feedback."""
    if not feedback:
        return []
    rows = [("rating", f"{rating(feedback.get('score'), feedback.get('label'))} (key {feedback.get('key_name')})")]
    for message in feedback.get("correction") or []:
        rows.append(("correction", f"{message['role']}: {message['content']}"))
    if feedback.get("comment"):
        rows.append(("comment", str(feedback["comment"])))
    if feedback.get("tags"):
        rows.append(("tags", ", ".join(feedback["tags"])))
    return rows


def item_heading(item: Json) -> str:
    """One line: deployment, model, key, tokens, latency and how the answer finished."""
    tokens = f"{item.get('prompt_tokens', 0)}+{item.get('completion_tokens', 0)} tokens"
    latency = f"{float(item.get('latency_ms') or 0) / 1000:.1f} s"
    finish = f"finish {item['finish_reason']}" if item.get("finish_reason") else ""
    parts = [item["deployment"], f"model {item.get('model_name') or '?'}", f"key {item['key_name']}", tokens,
             latency, finish, "streamed" if item.get("stream") else ""]
    return " · ".join(p for p in parts if p)
