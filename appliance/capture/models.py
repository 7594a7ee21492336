"""What crosses the API for capture, feedback and review: the models the gateway, the routes, the CLI and the
TUI share. Every text here has been through the capture redaction before it is stored (the gateway redacts a
captured exchange, the feedback route a correction and a comment)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MIB = 1024 * 1024
RESPONSE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ResponseId = Annotated[str, StringConstraints(pattern=RESPONSE_ID)]
ReviewState = Literal["pending", "accepted", "edited", "rejected"]
Rating = Literal["up", "down"] | Annotated[int, Field(strict=True, ge=1, le=5)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class CaptureSettings(BaseModel):
    """Capture of one deployment, in its policy document beside the guardrail policy. Off unless enabled."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Store this deployment's answers (after the capture redaction)")
    sample_rate: float = Field(1.0, ge=0.0, le=1.0, description="Share of the answers stored, 0 to 1")
    retention_days: float = Field(30.0, gt=0.0, le=3650.0, description="Captured items older than this go")
    max_rows: int = Field(100_000, ge=1, description="Beyond this many items the oldest go")
    max_bytes: int = Field(256 * MIB, ge=1, description="Beyond this many bytes of conversations the oldest go")

    def wants(self, draw: Callable[[], float] = random.random) -> bool:
        """Whether to capture one answer: capture is on and the answer falls in the sample. Cheap: the gateway
        asks before it redacts anything."""
        return self.enabled and (self.sample_rate >= 1.0 or draw() < self.sample_rate)


class ChatMessage(BaseModel):
    """One message as text: OpenAI content parts are joined (only their text is kept), a missing content is ""."""

    model_config = ConfigDict(extra="ignore")

    role: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    content: str = ""

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, list):
            return "".join(p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text")
        return value


def as_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class CapturedItem(BaseModel):
    """One answered request, redacted, keyed by the response id the client received (`chatcmpl-...`)."""

    response_id: ResponseId
    deployment: str
    model_id: str = ""
    model_name: str = ""
    key_id: str
    key_name: str
    created_at: float
    latency_ms: float = Field(0.0, ge=0.0)
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    finish_reason: str = ""
    endpoint: str = "/v1/chat/completions"
    messages: list[ChatMessage]  # the request's conversation, redacted
    answer: str  # the assistant's text (the first choice), redacted
    stream: bool = False
    size_bytes: int = Field(0, ge=0, description="Bytes of the stored conversation; computed when 0")

    @model_validator(mode="after")
    def _size(self) -> CapturedItem:
        if self.size_bytes == 0:
            self.size_bytes = len(json.dumps(as_dicts(self.messages), ensure_ascii=False).encode()) + len(
                self.answer.encode())
        return self

    def redacted(self, redact: Callable[[str], str]) -> CapturedItem:
        """A copy with every message and the answer through `redact` (and its size counted again)."""
        return CapturedItem.model_validate({
            **self.model_dump(), "messages": [{"role": m.role, "content": redact(m.content)} for m in self.messages],
            "answer": redact(self.answer), "size_bytes": 0,
        })


class FeedbackBody(BaseModel):
    """The body of `POST /v1/feedback`: at least one of rating, correction, comment or tags."""

    model_config = ConfigDict(extra="forbid")

    response_id: ResponseId
    rating: Rating | None = Field(None, description='"up", "down" or 1 to 5')
    correction: list[ChatMessage] | None = Field(
        None, min_length=1, max_length=64,
        description="The answer it should have given: assistant message(s), or the conversation ending with them")
    comment: str = Field("", max_length=4000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _something(self) -> FeedbackBody:
        if self.rating is None and self.correction is None and not self.comment.strip() and not self.tags:
            raise ValueError("give a rating, a correction, a comment or tags")
        return self


def normalise_rating(rating: str | int | None) -> tuple[int | None, bool | None]:
    """A rating as a 1-5 score and a thumbs label: up is 5 and true, down is 1 and false; 4-5 are true, 1-2
    false, 3 (neutral) and no rating have no label."""
    if rating is None:
        return None, None
    if rating in ("up", "down"):
        return (5, True) if rating == "up" else (1, False)
    score = int(rating)
    return score, (True if score >= 4 else False if score <= 2 else None)


class Feedback(BaseModel):
    """Stored feedback on one captured item; a later one from the same key replaces it."""

    response_id: str
    rating: Rating | None = None
    score: int | None = None  # 1 to 5
    label: bool | None = None  # thumbs: true up, false down, None neutral or unrated
    correction: list[ChatMessage] | None = None  # the corrected answer: assistant (and tool) messages
    comment: str = ""
    tags: list[str] = Field(default_factory=list)
    key_id: str
    key_name: str
    created_at: float


class Review(BaseModel):
    """The operator's decision on one item; `pending` until someone decides."""

    state: ReviewState = "pending"
    messages: list[ChatMessage] | None = None  # the edited conversation (state `edited`)
    reviewer: str = ""
    note: str = ""
    decided_at: float | None = None


class ReviewDecision(BaseModel):
    """What a reviewer does with one item: accept it, accept an edited conversation, reject it, or reopen it."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "edit", "reject", "reopen"]
    messages: list[ChatMessage] | None = Field(None, description="The edited conversation (action edit)")
    note: str = Field("", max_length=4000)

    @model_validator(mode="after")
    def _messages(self) -> ReviewDecision:
        if (self.action == "edit") != (self.messages is not None):
            raise ValueError("messages go with the edit action, and only with it")
        return self


class CaptureDetail(BaseModel):
    """One item for the review screen: the redacted conversation, its feedback and its review."""

    item: CapturedItem
    feedback: Feedback | None = None
    review: Review = Field(default_factory=Review)


class CaptureSummary(BaseModel):
    """One line of the review queue."""

    response_id: str
    deployment: str
    model_name: str
    key_name: str
    created_at: float
    preview: str  # the start of the last user message
    score: int | None = None
    label: bool | None = None
    corrected: bool = False
    has_feedback: bool = False
    state: ReviewState = "pending"


class CaptureFilter(BaseModel):
    """Which items the review queue lists; every condition given must hold. Newest first."""

    model_config = ConfigDict(extra="forbid")

    deployment: str | None = None
    key_name: str | None = None
    since: float | None = Field(None, description="Captured at or after (Unix time)")
    until: float | None = Field(None, description="Captured before (Unix time)")
    rated: Literal["up", "down"] | None = Field(None, description="Thumbs label of the feedback")
    corrected: bool | None = Field(None, description="With (true) or without (false) a correction")
    sampled: bool | None = Field(None, description="true: only items with no feedback (captured by the sample)")
    state: ReviewState | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31)  # SQLite's integers end at 2**63
