"""Feedback rules on a real store: unknown ids 404, another key's answer 403, a repeat replaces, ratings
normalised, corrections reduced to the answer and redacted, a decided item sent back to the queue."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from appliance.capture.feedback import REOPENED, NotYourResponse, ResponseNotFound, record_feedback
from appliance.capture.models import FeedbackBody, ReviewDecision, normalise_rating
from appliance.capture.review import decide, get_capture
from appliance.errors import BadRequest
from appliance.security.keys import ApiKey
from appliance.state import StateStore
from tests.capture.conftest import count, insert, item


def _body(**fields: Any) -> FeedbackBody:
    return FeedbackBody.model_validate({"response_id": "chatcmpl-1", **fields})


@pytest.fixture
def captured(store: StateStore, keys: dict[str, ApiKey]) -> StateStore:
    insert(store, item("chatcmpl-1", key=keys["app"]))
    return store


def test_unknown_id_is_404_and_another_keys_answer_is_403(captured: StateStore, keys: dict[str, ApiKey]) -> None:
    with pytest.raises(ResponseNotFound) as missing:
        record_feedback(captured, keys["app"], _body(response_id="chatcmpl-404", rating="up"))
    assert (missing.value.status, missing.value.code, missing.value.param) == (404, "response_not_found",
                                                                               "response_id")
    with pytest.raises(NotYourResponse) as foreign:
        record_feedback(captured, keys["other"], _body(rating="up"))
    assert (foreign.value.status, foreign.value.code) == (403, "not_your_response")
    assert count(captured, "capture_feedback") == 0


def test_repeated_feedback_replaces_the_earlier_one(captured: StateStore, keys: dict[str, ApiKey]) -> None:
    record_feedback(captured, keys["app"], _body(rating="down", comment="wrong", tags=["math"]), now=1.0)
    second = record_feedback(captured, keys["app"], _body(rating=4, tags=["ok", "ok", " style "]), now=2.0)
    assert count(captured, "capture_feedback") == 1
    stored = get_capture(captured, "chatcmpl-1").feedback
    assert stored == second
    assert (stored.rating, stored.score, stored.label, stored.comment, stored.tags, stored.created_at) == (
        4, 4, True, "", ["ok", "style"], 2.0)
    assert (stored.key_id, stored.key_name) == (keys["app"].id, "app")


@pytest.mark.parametrize(("rating", "score", "label"), [
    ("up", 5, True),      # thumbs up is the top score
    ("down", 1, False),   # thumbs down the bottom one
    (5, 5, True), (4, 4, True),  # 4-5: good
    (3, 3, None),         # neutral: no thumbs label
    (2, 2, False), (1, 1, False),  # 1-2: bad
    (None, None, None),   # a comment alone
])
def test_ratings_normalised_to_a_score_and_a_thumbs_label(rating: str | int | None, score: int | None,
                                                          label: bool | None) -> None:
    assert normalise_rating(rating) == (score, label)


@pytest.mark.parametrize("body", [
    {"rating": 0}, {"rating": 6}, {"rating": "sideways"}, {"rating": True}, {"rating": "4"},  # not a rating
    {},  # nothing at all
    {"rating": "up", "extra": 1},  # unknown field
    {"rating": "up", "response_id": "has space"},  # not a response id
    {"correction": []},  # an empty correction
])
def test_bad_bodies_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _body(**body)


def test_a_correction_keeps_the_answer_after_the_last_user_turn_redacted(captured: StateStore,
                                                                        keys: dict[str, ApiKey]) -> None:
    def redact(text: str) -> str:
        return text.replace("alice@example.com", "[EMAIL]")

    whole = [{"role": "user", "content": "my mail is alice@example.com, what is 2+2?"},
             {"role": "assistant", "content": "4, alice@example.com"}]
    feedback = record_feedback(captured, keys["app"], _body(rating="down", correction=whole,
                                                            comment="mail alice@example.com"), redact=redact)
    assert [m.model_dump() for m in feedback.correction or []] == [{"role": "assistant", "content": "4, [EMAIL]"}]
    assert feedback.comment == "mail [EMAIL]"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "Four"}, {"type": "text", "text": "."}]}]
    again = record_feedback(captured, keys["app"], _body(correction=parts))
    assert again.correction is not None and again.correction[0].content == "Four." and again.rating is None


@pytest.mark.parametrize(("correction", "message"), [
    ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], "no answer after the last user"),
    ([{"role": "tool", "content": "42"}], "must start with an 'assistant' message"),
    ([{"role": "assistant", "content": "a"}, {"role": "system", "content": "b"}], "message 2 of the answer is"),
    ([{"role": "assistant", "content": "  "}], "has no text"),
    ([{"role": "assistant", "content": "call"}, {"role": "tool", "content": "42"}], "must end with an 'assistant'"),
])
def test_bad_corrections_refused(captured: StateStore, keys: dict[str, ApiKey], correction: list[dict[str, Any]],
                                 message: str) -> None:
    with pytest.raises(BadRequest, match=message) as refused:
        record_feedback(captured, keys["app"], _body(rating="down", correction=correction))
    assert refused.value.param == "correction"


def test_new_feedback_sends_a_decided_item_back_to_the_queue(captured: StateStore, keys: dict[str, ApiKey]) -> None:
    record_feedback(captured, keys["app"], _body(rating="up"))
    decide(captured, "chatcmpl-1", ReviewDecision(action="accept"), "ops")
    record_feedback(captured, keys["app"], _body(rating="down"))
    review = get_capture(captured, "chatcmpl-1").review
    assert (review.state, review.note, review.decided_at) == ("pending", REOPENED, None)
