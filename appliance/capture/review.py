"""The review queue: list captured items by what happened to them, read one, and decide on it.

Decisions: `accept` (as captured, with its correction if it has one), `edit` (accept this conversation instead:
the roles must alternate and it must end with the assistant's answer), `reject` (never exported), `reopen`
(back to pending). A later decision replaces the earlier one; new feedback on a decided item reopens it
(feedback.py). Accepted and edited items are what `export.py` turns into dataset rows.
"""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.capture.models import (
    CaptureDetail,
    CaptureFilter,
    CaptureSummary,
    ChatMessage,
    Review,
    ReviewDecision,
    ReviewState,
    as_dicts,
)
from appliance.capture.rows import UPSERT_REVIEW, load_detail, review_from_row, review_params
from appliance.datasets.errors import RecordDefect
from appliance.datasets.kinds import parse
from appliance.errors import BadRequest, NotFound
from appliance.state.store import StateStore

PREVIEW_CHARS = 120
STATES: dict[str, ReviewState] = {"accept": "accepted", "edit": "edited", "reject": "rejected", "reopen": "pending"}
_SELECT = (
    "SELECT c.response_id, c.deployment, c.model_name, c.key_name, c.created_at, c.messages, f.score, f.label, "
    "f.correction IS NOT NULL AS corrected, f.response_id IS NOT NULL AS has_feedback, "
    "COALESCE(r.state, 'pending') AS state "
    "FROM captures c LEFT JOIN capture_feedback f ON f.response_id = c.response_id "
    "LEFT JOIN capture_reviews r ON r.response_id = c.response_id"
)


class CaptureNotFound(NotFound):
    code = "capture_not_found"


def _where(filt: CaptureFilter) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    for sql, value in (("c.deployment = ?", filt.deployment), ("c.key_name = ?", filt.key_name),
                       ("c.created_at >= ?", filt.since), ("c.created_at < ?", filt.until),
                       ("COALESCE(r.state, 'pending') = ?", filt.state)):
        if value is not None:
            conditions.append(sql)
            params.append(value)
    if filt.rated is not None:
        conditions.append(f"f.label = {1 if filt.rated == 'up' else 0}")
    if filt.corrected is not None:
        conditions.append(f"f.correction IS {'NOT ' if filt.corrected else ''}NULL")
    if filt.sampled is not None:
        conditions.append(f"f.response_id IS {'' if filt.sampled else 'NOT '}NULL")
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


def list_captures(store: StateStore, filt: CaptureFilter | None = None) -> list[CaptureSummary]:
    """The items `filt` selects, newest first (`limit`, `offset`)."""
    filt = filt or CaptureFilter()
    where, params = _where(filt)
    rows = store.query(f"{_SELECT}{where} ORDER BY c.created_at DESC, c.response_id DESC LIMIT ? OFFSET ?",
                       (*params, filt.limit, filt.offset))
    return [CaptureSummary(
        response_id=r["response_id"], deployment=r["deployment"], model_name=r["model_name"],
        key_name=r["key_name"], created_at=r["created_at"], preview=_preview(r["messages"]), score=r["score"],
        label=None if r["label"] is None else bool(r["label"]), corrected=bool(r["corrected"]),
        has_feedback=bool(r["has_feedback"]), state=r["state"],
    ) for r in rows]


def count_captures(store: StateStore, filt: CaptureFilter | None = None) -> int:
    """How many items `filt` selects (ignoring `limit` and `offset`)."""
    where, params = _where(filt or CaptureFilter())
    row = store.query_one(f"SELECT COUNT(*) AS n FROM ({_SELECT}{where})", tuple(params))
    return 0 if row is None else int(row["n"])


def _preview(messages_json: str) -> str:
    messages = json.loads(messages_json)
    users = [m for m in messages if m.get("role") == "user"] or messages
    text = " ".join(str(users[-1].get("content", "")).split()) if users else ""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def get_capture(store: StateStore, response_id: str) -> CaptureDetail:
    """One item with its feedback and review. Raises CaptureNotFound (404)."""
    detail = load_detail(store, response_id)
    if detail is None:
        raise CaptureNotFound(f"no captured item {response_id!r}", param="response_id")
    return detail


def check_conversation(messages: list[ChatMessage]) -> None:
    """An edited conversation as a dataset would take it. Raises BadRequest (param `messages`) naming the defect."""
    try:
        parse("sft", {"messages": as_dicts(messages)})
    except RecordDefect as defect:
        raise BadRequest(f"edited conversation: {defect}", param="messages") from None


def decide(store: StateStore, response_id: str, decision: ReviewDecision, reviewer: str,
           now: float | None = None) -> Review:
    """Record `reviewer`'s decision on one item and return the review.

    Raises:
        CaptureNotFound (404): no such item (never captured, or swept since it was listed).
        BadRequest (400): no reviewer name, or an edited conversation a dataset would refuse.
    """
    if not reviewer.strip():
        raise BadRequest("a decision needs the reviewer's name", param="reviewer")
    if decision.messages is not None:
        check_conversation(decision.messages)
    state = STATES[decision.action]
    with store.transaction() as conn:
        if conn.execute("SELECT 1 FROM captures WHERE response_id = ?", (response_id,)).fetchone() is None:
            raise CaptureNotFound(f"no captured item {response_id!r}", param="response_id")
        earlier = review_from_row(conn.execute("SELECT * FROM capture_reviews WHERE response_id = ?",
                                               (response_id,)).fetchone())
        # Reopening keeps an edit for the next decision; accepting as captured or rejecting drops it.
        messages = decision.messages if state == "edited" else earlier.messages if state == "pending" else None
        review = Review(state=state, messages=messages, reviewer=reviewer.strip(), note=decision.note,
                        decided_at=None if state == "pending" else (time.time() if now is None else now))
        conn.execute(UPSERT_REVIEW, review_params(response_id, review))
    return review
