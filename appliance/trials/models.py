"""What crosses the trials' boundaries: a shadow request handed over by the gateway, a stored pair, a shadow's
summary (the API, the TUI and the shadow gate read it)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.capture.models import ChatMessage
from appliance.trials.compare import Answer, PairFigures

Redact = Callable[[str], str]
# The agreement histogram's buckets: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]; 1.0 falls in the last.
BUCKETS = 10


class ShadowSettings(BaseModel):
    """A live deployment's shadow: the candidate deployment that answers a sample of its requests in the
    background (never returned to the app)."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(..., description="The candidate deployment (must serve the same endpoints)")
    sample_rate: float = Field(0.1, ge=0.0, le=1.0, description="Share of the live requests also sent to it")

    def wants(self, draw: Callable[[], float] = random.random) -> bool:
        """Whether to shadow one request (cheap: asked on the request path before anything is copied)."""
        return self.sample_rate >= 1.0 or (self.sample_rate > 0.0 and draw() < self.sample_rate)


def bucket_of(agreement: float) -> int:
    return min(BUCKETS - 1, max(0, int(agreement * BUCKETS)))


def conversation(body: dict[str, Any]) -> list[ChatMessage]:
    """A request body's conversation as text messages (a completion's prompt as one user message)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return [ChatMessage.model_validate(m) for m in messages if isinstance(m, dict) and m.get("role")]
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt or () if isinstance(p, str))
    return [ChatMessage(role="user", content=text)]


@dataclass(frozen=True)
class ShadowRequest:
    """One sampled request, handed to `ShadowRunner.offer` after the live answer was sent.

    `body`: the request as forwarded to the live backend, after the live deployment's input guardrails (so its
    masking applies to the candidate too); the runner sends a copy with `model` set to the candidate and
    `stream` off. `live_answer`: what the app received (after the output guardrails). `redact`: the live
    deployment's capture redaction, applied on the writer's thread to the conversation and both answers before
    they are stored (None: stored as they are)."""

    live: str
    candidate: str
    body: dict[str, Any]
    live_answer: Answer
    endpoint: str = "/v1/chat/completions"
    key_id: str = ""
    redact: Redact | None = None
    created_at: float = field(default_factory=time.time)


class ShadowPair(BaseModel):
    """One stored pair: the redacted conversation, both redacted answers, their statuses and latencies, the
    figures."""

    id: int = 0
    live: str
    candidate: str
    created_at: float
    endpoint: str = ""
    key_id: str = ""
    messages: list[ChatMessage]
    live_status: int
    live_answer: str
    live_latency_s: float
    candidate_status: int
    candidate_answer: str
    candidate_latency_s: float
    figures: PairFigures


class Bucket(BaseModel):
    lower: float
    upper: float
    count: int


class ShadowSummary(BaseModel):
    """A shadow's aggregates over its newest pairs (`pairs`, at most `keep`: the ones the store keeps, so a
    restart recomputes the same figures), and the runner's counts since it started."""

    live: str
    candidate: str
    pairs: int = Field(..., description="Pairs the figures are over (the newest, at most `keep`)")
    keep: int
    agreement_mean: float | None = Field(None, description="Mean agreement (0 to 1): what the shadow gate judges")
    exact_rate: float | None = Field(None, description="Share of pairs equal after normalisation")
    chrf_mean: float | None = None
    cosine_mean: float | None = None
    cosine_pairs: int = Field(0, description="Pairs with an embedding cosine")
    length_delta_chars_mean: float | None = None
    length_delta_tokens_mean: float | None = None
    latency_delta_s_mean: float | None = None
    live_refusals: dict[str, int] = Field(default_factory=dict, description="By kind: error, filtered, empty")
    candidate_refusals: dict[str, int] = Field(default_factory=dict)
    histogram: list[Bucket] = Field(default_factory=list, description="Agreement of the pairs in 10 buckets")
    offered: int = Field(0, description="Requests offered since the runner started")
    dropped: int = Field(0, description="Offered requests dropped (queue full or stopping) since it started")
    embed_failures: int = Field(0, description="Pairs whose embeddings could not be fetched")
    unstored: int = Field(0, description="Pairs computed but not stored (redaction or write failed)")
    withdrawn: int = Field(0, description="Requests to the candidate withdrawn for live traffic on shared CPU "
                           "cores and asked again later")
    since: float | None = Field(None, description="When the oldest pair of the figures was taken")
