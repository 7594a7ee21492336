"""Feedback from applications on answers that were captured (`POST /v1/feedback`).

Rules: an unknown response id is a 404 (`response_not_found`; an answer that was not captured, was swept, or
is still in the writer's queue: see `CaptureWriter.pending`); a key may rate only the answers it was given
(403 `not_your_response`); feedback again on the same answer replaces the earlier one, and sends an item that
was already reviewed back to the queue (`pending`), since the reviewer decided on other feedback.

A correction is the answer the model should have given: assistant messages (tool results between them), or a
whole conversation ending with them, of which the messages after its last user turn are kept (the prompt is
always the captured one, which was redacted; an application would send it unredacted).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from appliance.capture.models import ChatMessage, Feedback, FeedbackBody, normalise_rating
from appliance.capture.rows import UPSERT_FEEDBACK, feedback_params
from appliance.errors import BadRequest, Forbidden, NotFound
from appliance.security.keys import ApiKey
from appliance.state.store import StateStore

REOPENED = "feedback changed after the review"


class ResponseNotFound(NotFound):
    code = "response_not_found"


class NotYourResponse(Forbidden):
    code = "not_your_response"


def captured_deployment(store: StateStore, response_id: str) -> str | None:
    """The deployment a captured answer came from (its policy redacts the feedback), None when unknown."""
    row = store.query_one("SELECT deployment FROM captures WHERE response_id = ?", (response_id,))
    return str(row["deployment"]) if row is not None else None


def record_feedback(store: StateStore, key: ApiKey, body: FeedbackBody, *,
                    redact: Callable[[str], str] | None = None, now: float | None = None) -> Feedback:
    """Store `key`'s feedback on one captured answer (replacing its earlier one) and return it.

    Args:
        redact: the deployment's capture redaction, applied to the correction and the comment before storing.
    Raises:
        ResponseNotFound (404): no captured item has this response id.
        NotYourResponse (403): the item was captured for another key.
        BadRequest (400, param `correction`): the correction holds no answer, or a role an answer cannot have.
    """
    correction = None if body.correction is None else _answer(body.correction)
    clean = redact or (lambda text: text)
    if correction is not None:
        correction = [ChatMessage(role=m.role, content=clean(m.content)) for m in correction]
    score, label = normalise_rating(body.rating)
    feedback = Feedback(
        response_id=body.response_id, rating=body.rating, score=score, label=label, correction=correction,
        comment=clean(body.comment), tags=sorted(set(body.tags)), key_id=key.id, key_name=key.name,
        created_at=time.time() if now is None else now,
    )
    with store.transaction() as conn:
        row = conn.execute("SELECT key_id FROM captures WHERE response_id = ?", (body.response_id,)).fetchone()
        if row is None:
            raise ResponseNotFound(f"no captured answer has the id {body.response_id!r} (capture may be off "
                                   "for its deployment, or the answer was not in the sample or is past the "
                                   "retention)", param="response_id")
        if row["key_id"] != key.id:
            raise NotYourResponse(f"answer {body.response_id!r} was given to another key; a key may rate only "
                                  "its own answers", param="response_id")
        conn.execute(UPSERT_FEEDBACK, feedback_params(feedback))
        conn.execute("UPDATE capture_reviews SET state = 'pending', decided_at = NULL, note = ? "
                     "WHERE response_id = ? AND state != 'pending'", (REOPENED, body.response_id))
    return feedback


def _answer(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The corrected answer: the messages after the last user turn (all of them when there is none)."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    answer = messages[last_user + 1:]
    if not answer:
        raise BadRequest("correction: no answer after the last user message; end it with the assistant's "
                         "corrected message", param="correction")
    if answer[0].role != "assistant":
        raise BadRequest(f"correction: the answer must start with an 'assistant' message, not {answer[0].role!r}",
                         param="correction")
    for index, message in enumerate(answer, start=1):
        if message.role not in ("assistant", "tool"):
            raise BadRequest(f"correction: message {index} of the answer is {message.role!r}; an answer holds "
                             "only 'assistant' and 'tool' messages", param="correction")
        if message.role == "assistant" and not message.content.strip():
            raise BadRequest(f"correction: message {index} of the answer has no text", param="correction")
    if answer[-1].role != "assistant":
        raise BadRequest("correction: the answer must end with an 'assistant' message", param="correction")
    return answer
