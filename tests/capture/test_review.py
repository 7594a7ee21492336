"""The review queue on a real store: filters (rated down, corrected, sampled, deployment, dates, state), one
item with its feedback, and the decisions (accept, edit with a checked conversation, reject, reopen)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.capture.feedback import record_feedback
from appliance.capture.models import CaptureFilter, ChatMessage, FeedbackBody, ReviewDecision
from appliance.capture.review import CaptureNotFound, count_captures, decide, get_capture, list_captures
from appliance.errors import BadRequest
from appliance.security.keys import ApiKey
from appliance.state import StateStore
from tests.capture.conftest import T0, insert, item


@pytest.fixture
def queue(store: StateStore, keys: dict[str, ApiKey]) -> StateStore:
    app, other = keys["app"], keys["other"]
    insert(store,
           item("chatcmpl-down", key=app, created_at=T0 + 1, question="What is 2+2?"),
           item("chatcmpl-fixed", key=app, created_at=T0 + 2),
           item("chatcmpl-up", key=other, created_at=T0 + 3),
           item("chatcmpl-plain", key=app, created_at=T0 + 4),
           item("chatcmpl-code", key=app, deployment="code", created_at=T0 + 5))
    record_feedback(store, app, FeedbackBody(response_id="chatcmpl-down", rating="down"))
    record_feedback(store, app, FeedbackBody.model_validate({
        "response_id": "chatcmpl-fixed", "rating": 2,
        "correction": [{"role": "assistant", "content": "The right answer."}]}))
    record_feedback(store, other, FeedbackBody(response_id="chatcmpl-up", rating="up"))
    return store


def _ids(store: StateStore, **filters: Any) -> list[str]:
    return [s.response_id for s in list_captures(store, CaptureFilter(**filters))]


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, ["chatcmpl-code", "chatcmpl-plain", "chatcmpl-up", "chatcmpl-fixed", "chatcmpl-down"]),  # newest first
    ({"rated": "down"}, ["chatcmpl-fixed", "chatcmpl-down"]),      # thumbs down, from "down" and from 2
    ({"rated": "up"}, ["chatcmpl-up"]),
    ({"corrected": True}, ["chatcmpl-fixed"]),
    ({"corrected": False, "sampled": False}, ["chatcmpl-up", "chatcmpl-down"]),  # feedback without a correction
    ({"sampled": True}, ["chatcmpl-code", "chatcmpl-plain"]),        # no feedback: only in the sample
    ({"deployment": "code"}, ["chatcmpl-code"]),
    ({"key_name": "other"}, ["chatcmpl-up"]),
    ({"since": T0 + 2, "until": T0 + 4}, ["chatcmpl-up", "chatcmpl-fixed"]),  # since inclusive, until exclusive
    ({"limit": 2, "offset": 1}, ["chatcmpl-plain", "chatcmpl-up"]),
    ({"state": "pending", "rated": "down", "deployment": "chat"}, ["chatcmpl-fixed", "chatcmpl-down"]),
])
def test_filters(queue: StateStore, filters: dict[str, Any], expected: list[str]) -> None:
    assert _ids(queue, **filters) == expected
    unpaged = {k: v for k, v in filters.items() if k not in ("limit", "offset")}
    assert count_captures(queue, CaptureFilter(**unpaged)) == (5 if not unpaged else len(expected))


def test_summary_and_detail(queue: StateStore) -> None:
    summary = list_captures(queue, CaptureFilter(rated="down", corrected=False))[0]
    assert (summary.response_id, summary.preview, summary.score, summary.label, summary.state) == (
        "chatcmpl-down", "What is 2+2?", 1, False, "pending")
    detail = get_capture(queue, "chatcmpl-fixed")
    assert [m.role for m in detail.item.messages] == ["system", "user"]
    assert detail.item.answer == "Answer chatcmpl-fixed." and detail.item.latency_ms == 12.5
    assert detail.feedback is not None and detail.feedback.correction == [
        ChatMessage(role="assistant", content="The right answer.")]
    assert detail.review.state == "pending" and detail.review.decided_at is None
    with pytest.raises(CaptureNotFound):
        get_capture(queue, "chatcmpl-nope")


def test_decisions_and_their_order(queue: StateStore) -> None:
    accepted = decide(queue, "chatcmpl-up", ReviewDecision(action="accept", note="good"), "alice", now=T0 + 10)
    assert (accepted.state, accepted.reviewer, accepted.note, accepted.decided_at) == ("accepted", "alice", "good",
                                                                                      T0 + 10)
    edited_messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}]
    edited = decide(queue, "chatcmpl-down", ReviewDecision.model_validate(
        {"action": "edit", "messages": edited_messages}), "bob")
    assert edited.state == "edited" and [m.content for m in edited.messages or []] == ["What is 2+2?", "4."]
    reopened = decide(queue, "chatcmpl-down", ReviewDecision(action="reopen"), "bob")
    assert reopened.state == "pending" and reopened.messages == edited.messages  # the edit stays for next time
    rejected = decide(queue, "chatcmpl-down", ReviewDecision(action="reject"), "carol")
    assert rejected.state == "rejected" and rejected.messages is None
    assert _ids(queue, state="rejected") == ["chatcmpl-down"]
    assert _ids(queue, state="accepted") == ["chatcmpl-up"]
    assert get_capture(queue, "chatcmpl-down").review == rejected


@pytest.mark.parametrize(("messages", "message"), [
    ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}], "'assistant' before any 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "'user' after 'user'"),
    ([{"role": "user", "content": "a"}], "the last message must be 'assistant'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}], "empty field 'content'"),
])
def test_an_edit_is_checked_as_a_dataset_would_check_it(queue: StateStore, messages: list[dict[str, str]],
                                                        message: str) -> None:
    with pytest.raises(BadRequest, match=message) as refused:
        decide(queue, "chatcmpl-plain", ReviewDecision.model_validate({"action": "edit", "messages": messages}),
               "ops")
    assert refused.value.param == "messages"
    assert get_capture(queue, "chatcmpl-plain").review.state == "pending"


def test_decisions_need_an_item_a_reviewer_and_matching_messages(queue: StateStore) -> None:
    with pytest.raises(CaptureNotFound):
        decide(queue, "chatcmpl-nope", ReviewDecision(action="accept"), "ops")
    with pytest.raises(BadRequest, match="reviewer"):
        decide(queue, "chatcmpl-plain", ReviewDecision(action="accept"), "  ")
    with pytest.raises(ValueError, match="messages go with the edit action"):
        ReviewDecision(action="edit")
    with pytest.raises(ValueError, match="messages go with the edit action"):
        ReviewDecision.model_validate({"action": "accept", "messages": [{"role": "user", "content": "x"}]})
