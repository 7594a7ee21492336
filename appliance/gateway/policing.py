"""One request under its deployment's policy and shadow: the input side (limits, deny rules, redaction, the guard
model) before it is forwarded, the output side on the answer (whole, or streamed through the SSE rewriter), then
the capture of the exchange and the offer to the shadow. Refusals are counted (`slm_guardrail_*`) and audited
without content.

Only requests to a deployment with a policy or a shadow come here; the others keep the plain relay."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from appliance.capture.models import CapturedItem
from appliance.deploy.policies import ActivePolicy
from appliance.errors import BadRequest
from appliance.gateway.answers import CLIENT_ANSWER, AnswerText
from appliance.gateway.context import GatewayContext
from appliance.guardrails.checks import check_answer, check_request
from appliance.guardrails.errors import PolicyViolation
from appliance.guardrails.guard_model import Direction, ask_guard
from appliance.guardrails.sse import SseGuard
from appliance.security.keys import ApiKey
from appliance.trials.compare import Answer
from appliance.trials.models import ShadowRequest, ShadowSettings

log = logging.getLogger(__name__)
GUARD_ANSWER_TOKENS = 24  # "unsafe\nS1,S10" and a little room


def _conversation(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request as chat messages (a completion's prompt as one user message)."""
    messages = data.get("messages")
    if isinstance(messages, list):
        return [m for m in messages if isinstance(m, dict)]
    prompt = data.get("prompt")
    text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt or () if isinstance(p, str))
    return [{"role": "user", "content": text}]


class Exchange:
    """The policy's work on one request. `served`: the model name the app sent (a deployment or an adapter)."""

    def __init__(self, gateway: GatewayContext, policy: ActivePolicy | None, shadow: ShadowSettings | None,
                 served: str, path: str, key: ApiKey, data: dict[str, Any]) -> None:
        self.gateway, self.policy, self.served, self.path, self.key = gateway, policy, served, path, key
        self.deployment = gateway.deployments.deployment_of(served)
        self.rails = policy.rails if policy is not None else None
        self.data = self.sent = data
        self.stream = bool(data.get("stream"))
        self.captures = policy is not None and policy.capture.wants()
        self.shadow = shadow if shadow is not None and shadow.wants() else None
        self.started = time.perf_counter()
        self.collected: AnswerText | None = None
        self.client_answer = CLIENT_ANSWER.get()  # (id, path) of the answer as the app knows it, if not ours
        guard = policy.policy.guardrails.guard if policy is not None else None
        self.guard = guard
        self.guard_output = guard is not None and "output" in guard.directions
        if self.stream and self.guard_output and "messages" not in data:
            raise BadRequest("this deployment's guard model judges whole answers: stream a chat completion, or "
                             "ask /v1/completions without stream", param="stream")

    @property
    def whole_answer(self) -> bool:
        """A streamed request whose answer must be judged whole first (the guard model on the output): the
        backend answers in one piece, streamed to the app after the verdict."""
        return self.stream and self.guard_output

    # -- input --------------------------------------------------------------------------------------
    async def before(self) -> dict[str, Any] | None:
        """Check the request; returns the body to send instead when the policy rewrote it.

        Raises:
            PolicyViolation: a limit, a deny rule or the guard model refused it (counted and audited).
        """
        body: dict[str, Any] | None = None
        if self.rails is not None:
            try:
                checked = check_request(self.rails, self.data)
            except PolicyViolation as exc:
                await self._refused(exc)
                raise
            if checked.changed:
                body = checked.body
                self.gateway.metrics.guardrail_rewrites.labels(self.deployment, "input").inc()
        await self._ask_guard("input", _conversation(body or self.data))
        self.sent = body or self.data  # what the backend (and a shadow) gets
        return body

    # -- output -------------------------------------------------------------------------------------
    async def after_whole(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The whole answer, checked and masked; captured. Raises PolicyViolation (a 400) on a deny match."""
        if self.rails is not None:
            try:
                checked = check_answer(self.rails, answer)
            except PolicyViolation as exc:
                await self._refused(exc)
                raise
            if checked.changed:
                answer = checked.body
                self.gateway.metrics.guardrail_rewrites.labels(self.deployment, "output").inc()
        if self.guard_output:
            text = AnswerText.of(answer).text
            await self._ask_guard("output", [*_conversation(self.data), {"role": "assistant", "content": text}])
        self.collected = AnswerText.of(answer)
        self.finished()
        return answer

    def stream_tap(self) -> StreamTap:
        rails = self.rails
        sse = SseGuard(rails.stream, int(self.data.get("n") or 1)) if rails is not None and rails.active("output") \
            else None
        self.collected = AnswerText()
        return StreamTap(self, sse, self.collected)

    @property
    def collects(self) -> bool:
        """Whether the answer's text is read on its way (for capture or the shadow)."""
        return self.captures or self.shadow is not None

    # -- refusals, the guard model, capture ---------------------------------------------------------
    async def _ask_guard(self, direction: Direction, messages: list[dict[str, Any]]) -> None:
        guard = self.guard
        if guard is None or direction not in guard.directions:
            return
        decision = await ask_guard(self._guard_sender(guard.deployment), messages, direction, guard.timeout_s,
                                   guard.on_error, guard.categories)
        self.gateway.metrics.guard_verdicts.labels(self.deployment, direction, decision.reason,
                                                   "allowed" if decision.allowed else "refused").inc()
        try:
            decision.raise_if_refused(direction)
        except PolicyViolation as exc:
            await self._refused(exc)
            raise

    def _guard_sender(self, deployment: str) -> Callable[[list[dict[str, str]]], Any]:
        async def send(messages: list[dict[str, str]]) -> str:
            route = self.gateway.deployments.route(deployment)
            if route is None:
                raise RuntimeError(f"guard model {deployment!r} is not serving")
            process = route.process
            body = {"model": deployment, "messages": messages, "max_tokens": GUARD_ANSWER_TOKENS,
                    "temperature": 0.0, "stream": False}
            response = await process.client.post(f"{process.endpoint}/v1/chat/completions", json=body,
                                                 headers=process.spec.auth_headers())
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"].get("content") or "")

        return send

    async def _refused(self, exc: PolicyViolation) -> None:
        self.gateway.metrics.guardrail_blocks.labels(self.deployment, exc.rule, exc.direction, exc.reason).inc()
        await asyncio.to_thread(self.gateway.audit, self.key.name, "guardrail.block", self.deployment,
                                {"rule": exc.rule, "direction": exc.direction, "reason": exc.reason,
                                 "model": self.served})

    def refused_in_stream(self, rule: str, reason: str) -> None:
        """A deny rule ended a streamed answer (content_filter): counted, and audited off the request path."""
        self.gateway.metrics.guardrail_blocks.labels(self.deployment, rule, "output", reason).inc()
        self.gateway.background(self.gateway.audit, self.key.name, "guardrail.block", self.deployment,
                                {"rule": rule, "direction": "output", "reason": reason, "model": self.served,
                                 "stream": True})

    def finished(self) -> None:
        """The answer was whole: capture it and offer it to the shadow (neither blocks)."""
        self.capture()
        self.offer_shadow()

    def _redact(self) -> Callable[[str], str] | None:
        rails = self.rails
        return (lambda text: rails.redact(text, "capture")) if rails is not None else None

    def offer_shadow(self) -> None:
        """The same request (as the backend got it) to the shadow, with the answer the app got to compare."""
        answer, shadow = self.collected, self.shadow
        if shadow is None or answer is None:
            return
        self.shadow = None  # once
        live = Answer(200, answer.text, time.perf_counter() - self.started, answer.finish_reason,
                      answer.completion_tokens or None)
        self.gateway.shadows.offer(ShadowRequest(self.deployment, shadow.candidate, self.sent, live, self.path,
                                                 self.key.id, self._redact()))

    def capture(self) -> None:
        """Hand the exchange to the capture writer (never blocks; the writer redacts it on its own thread)."""
        answer = self.collected
        if not self.captures or answer is None or not answer.response_id:
            return
        self.captures = False  # once
        response_id, path = self.client_answer or (answer.response_id, self.path)
        model_id, model_name = self.gateway.deployments.model_of(self.deployment)
        item = CapturedItem(
            response_id=response_id, deployment=self.deployment, model_id=model_id, model_name=model_name,
            key_id=self.key.id, key_name=self.key.name, created_at=time.time(),
            latency_ms=round((time.perf_counter() - self.started) * 1000, 1), prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens, finish_reason=answer.finish_reason, endpoint=path,
            messages=_conversation(self.data), answer=answer.text, stream=self.stream)  # type: ignore[arg-type]
        self.gateway.capture.submit(item, redact=self._redact())


class StreamTap:
    """A streamed answer on its way to the app: rewritten by the policy's output side (when it has one), its
    text collected for capture."""

    def __init__(self, exchange: Exchange, sse: SseGuard | None, collected: AnswerText) -> None:
        self.exchange = exchange
        self.sse = sse
        self.collected = collected
        self._reported = False

    @property
    def ended(self) -> bool:
        """A deny rule ended the answer: the relay stops reading the backend."""
        return self.sse is not None and self.sse.ended

    @property
    def blocked(self) -> bool:
        """A deny rule ended at least one choice (content_filter)."""
        return self.sse is not None and bool(self.sse.denied)

    def feed(self, chunk: bytes) -> bytes:
        out = self.sse.feed(chunk) if self.sse is not None else chunk
        if self.exchange.collects and out:
            self.collected.feed(out)
        if self.ended:
            self._report()
        return out

    def _report(self) -> None:
        if self.sse is not None and not self._reported:
            self._reported = True
            for rule, reason in self.sse.denied:
                self.exchange.refused_in_stream(rule, reason)

    def done(self) -> None:
        """The stream is over: count the rules that fired, and capture the answer if it was whole (it has a
        finish reason: the backend's, or content_filter) — not one cut by a hang-up or a failure."""
        self._report()
        if self.collected.finish_reason:
            self.exchange.finished()
