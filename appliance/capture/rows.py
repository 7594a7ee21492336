"""The capture tables (migration 11) and their rows as models: the one place that knows the columns.

`captures` holds one row per captured answer, keyed by its response id; `capture_feedback` and
`capture_reviews` hold at most one row each per item and go with it (ON DELETE CASCADE). Messages, corrections
and tags are JSON text."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from appliance.capture.models import (
    CaptureDetail,
    CapturedItem,
    ChatMessage,
    Feedback,
    Review,
    as_dicts,
)
from appliance.state.store import StateStore

INSERT_ITEM = (
    "INSERT INTO captures(response_id, deployment, model_id, model_name, key_id, key_name, created_at, latency_ms, "
    "prompt_tokens, completion_tokens, finish_reason, endpoint, stream, messages, answer, size_bytes) "
    "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(response_id) DO NOTHING"
)
UPSERT_FEEDBACK = (
    "INSERT INTO capture_feedback(response_id, rating, score, label, correction, comment, tags, key_id, key_name, "
    "created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(response_id) DO UPDATE SET "
    "rating = excluded.rating, score = excluded.score, label = excluded.label, correction = excluded.correction, "
    "comment = excluded.comment, tags = excluded.tags, key_id = excluded.key_id, key_name = excluded.key_name, "
    "created_at = excluded.created_at"
)
UPSERT_REVIEW = (
    "INSERT INTO capture_reviews(response_id, state, messages, reviewer, note, decided_at) VALUES(?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(response_id) DO UPDATE SET state = excluded.state, messages = excluded.messages, "
    "reviewer = excluded.reviewer, note = excluded.note, decided_at = excluded.decided_at"
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _messages(text: str | None) -> list[ChatMessage] | None:
    return None if text is None else [ChatMessage.model_validate(m) for m in json.loads(text)]


def item_params(item: CapturedItem) -> tuple[Any, ...]:
    return (item.response_id, item.deployment, item.model_id, item.model_name, item.key_id, item.key_name,
            item.created_at, item.latency_ms, item.prompt_tokens, item.completion_tokens, item.finish_reason,
            item.endpoint, int(item.stream), _json(as_dicts(item.messages)), item.answer, item.size_bytes)


def item_from_row(row: sqlite3.Row) -> CapturedItem:
    fields = dict(row)
    fields["stream"] = bool(fields["stream"])
    fields["messages"] = _messages(fields["messages"])
    return CapturedItem.model_validate(fields)


def feedback_params(feedback: Feedback) -> tuple[Any, ...]:
    correction = None if feedback.correction is None else _json(as_dicts(feedback.correction))
    label = None if feedback.label is None else int(feedback.label)
    rating = None if feedback.rating is None else _json(feedback.rating)
    return (feedback.response_id, rating, feedback.score, label, correction, feedback.comment,
            _json(feedback.tags), feedback.key_id, feedback.key_name, feedback.created_at)


def feedback_from_row(row: sqlite3.Row) -> Feedback:
    return Feedback(
        response_id=row["response_id"], rating=None if row["rating"] is None else json.loads(row["rating"]),
        score=row["score"], label=None if row["label"] is None else bool(row["label"]),
        correction=_messages(row["correction"]), comment=row["comment"], tags=json.loads(row["tags"]),
        key_id=row["key_id"], key_name=row["key_name"], created_at=row["created_at"],
    )


def review_params(response_id: str, review: Review) -> tuple[Any, ...]:
    messages = None if review.messages is None else _json(as_dicts(review.messages))
    return response_id, review.state, messages, review.reviewer, review.note, review.decided_at


def review_from_row(row: sqlite3.Row | None) -> Review:
    if row is None:
        return Review()
    return Review(state=row["state"], messages=_messages(row["messages"]), reviewer=row["reviewer"],
                  note=row["note"], decided_at=row["decided_at"])


def load_detail(store: StateStore, response_id: str) -> CaptureDetail | None:
    """The item with its feedback and review, or None when no item has this id."""
    row = store.query_one("SELECT * FROM captures WHERE response_id = ?", (response_id,))
    if row is None:
        return None
    feedback = store.query_one("SELECT * FROM capture_feedback WHERE response_id = ?", (response_id,))
    review = store.query_one("SELECT * FROM capture_reviews WHERE response_id = ?", (response_id,))
    return CaptureDetail(item=item_from_row(row), feedback=None if feedback is None else feedback_from_row(feedback),
                         review=review_from_row(review))
