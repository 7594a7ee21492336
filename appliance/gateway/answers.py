"""What an answer said, read from a whole chat/completion answer or from the SSE bytes the app received: the
response id, the first choice's text, its finish reason and the token counts (for capture)."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# Set by an API that answers through chat completions under its own ids (/v1/responses): (its response id, its
# path), so capture and feedback know the answer by the id the app was given.
CLIENT_ANSWER: ContextVar[tuple[str, str] | None] = ContextVar("client_answer", default=None)


@dataclass
class AnswerText:
    response_id: str = ""
    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _pending: bytes = b""

    @classmethod
    def of(cls, answer: dict[str, Any]) -> AnswerText:
        read = cls(response_id=str(answer.get("id") or ""))
        choices = [c for c in answer.get("choices") or () if isinstance(c, dict)]
        first = next((c for c in choices if c.get("index", 0) == 0), None)
        if first is not None:
            message = first.get("message")
            text = message.get("content") if isinstance(message, dict) else first.get("text")
            read.text = text if isinstance(text, str) else ""
            read.finish_reason = str(first.get("finish_reason") or "")
        read._usage(answer.get("usage"))
        return read

    def feed(self, data: bytes) -> None:
        """SSE bytes as sent (events may be cut across reads)."""
        self._pending += data
        while (cut := self._pending.find(b"\n\n")) >= 0:
            event, self._pending = self._pending[:cut].strip(), self._pending[cut + 2:]
            if event.startswith(b"data:") and event[5:].strip() != b"[DONE]":
                try:
                    self._chunk(json.loads(event[5:]))
                except ValueError:
                    continue

    def _chunk(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        self.response_id = self.response_id or str(chunk.get("id") or "")
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                self.text += text
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        self._usage(chunk.get("usage"))

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
