"""`POST /v1/feedback`: an application rates, corrects or comments on an answer it was given (a captured one).
A key may rate only its own answers; the correction and the comment go through the deployment's capture
redaction before they are stored (`appliance.capture.feedback` has the rules)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from appliance.capture.feedback import captured_deployment, record_feedback
from appliance.capture.models import Feedback, FeedbackBody
from appliance.gateway.context import gateway_of
from appliance.web.auth import caller, require

router = APIRouter(tags=["openai"])
FLUSH_WAIT_S = 1.0  # an answer still in the capture writer's queue is written first (it lingers up to 0.2 s)


@router.post("/v1/feedback", response_model=Feedback, dependencies=[Depends(require("inference"))])
async def feedback(body: FeedbackBody, request: Request) -> Feedback:
    """Rate (`up`/`down` or 1–5), correct (the answer it should have given) or comment on an answer this key
    received (`response_id`: the answer's `id`, `chatcmpl-…`). Feedback again replaces the earlier one. 404:
    the answer was not captured (capture off, not in the sample, past retention); 403: another key's answer."""
    gateway = gateway_of(request)
    if gateway.capture.pending(body.response_id):
        await gateway.capture.flush(FLUSH_WAIT_S)
    key = caller(request)

    def record() -> Feedback:
        deployment = captured_deployment(gateway.capture.store, body.response_id)
        policy = gateway.deployments.policy(deployment) if deployment else None
        rails = policy.rails if policy is not None else None
        redact = (lambda text: rails.redact(text, "capture")) if rails is not None else None
        return record_feedback(gateway.capture.store, key, body, redact=redact)

    return await asyncio.to_thread(record)
