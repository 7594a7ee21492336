"""A streamed OpenAI answer (SSE: `data: {chunk}` events, then `data: [DONE]`) rewritten through one StreamFilter
per choice: each chunk's text (`delta.content` for chat, `text` for completions) is replaced by what the filter
releases; chunks left with nothing to say are dropped; a choice's last chunk carries what its filter flushes. A
deny match ends the choice with finish_reason "content_filter"; when every choice has ended that way the stream
ends with `data: [DONE]` and `ended` is set, so the caller closes the backend's response.

Bytes in, bytes out, no I/O: events may be split across reads; events this does not change pass as they came."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from appliance.guardrails.stream import StreamFilter

DONE = b"data: [DONE]\n\n"


def _text_slot(choice: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return delta, "content"
    if "text" in choice:
        return choice, "text"
    return None


class SseGuard:
    """One streamed answer's rewriter. `choices`: how many the request asked for (`n`)."""

    def __init__(self, new_filter: Callable[[], StreamFilter], choices: int = 1) -> None:
        self._new_filter = new_filter
        self._choices = choices
        self._filters: dict[int, StreamFilter] = {}
        self._buffer = b""
        self._template: dict[str, Any] | None = None
        self.denied: list[tuple[str, str]] = []  # (rule, reason) per choice ended by a deny match
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        """The bytes to send for `data` (complete events only; the rest waits for the next read)."""
        if self.ended:
            return b""
        self._buffer += data
        out = []
        while not self.ended and (cut := self._buffer.find(b"\n\n")) >= 0:
            event, self._buffer = self._buffer[:cut + 2], self._buffer[cut + 2:]
            out.append(self._event(event))
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        payload = event.strip()
        if not payload.startswith(b"data:"):
            return event
        payload = payload[5:].strip()
        if payload == b"[DONE]":
            return self._flush() + event
        try:
            chunk = json.loads(payload)
        except ValueError:
            return event
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list) or not chunk["choices"]:
            return event  # usage, errors: as they came
        self._template = chunk
        kept = [c for c in chunk["choices"] if not isinstance(c, dict) or self._choice(c)]
        if not kept:
            return b""
        chunk["choices"] = kept
        out = b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
        if len(self.denied) >= self._choices:
            self.ended = True
            out += DONE
        return out

    def _choice(self, choice: dict[str, Any]) -> bool:
        """Rewrite one choice of a chunk in place; False: nothing of it is left to send."""
        index = int(choice.get("index") or 0)
        filt = self._filters.setdefault(index, self._new_filter())
        if filt.denied is not None:
            return False  # that choice has ended; the backend still generates it
        slot = _text_slot(choice)
        if slot is None:
            return True
        holder, key = slot
        text = holder.get(key)
        released = filt.feed(text) if isinstance(text, str) else ""
        if choice.get("finish_reason") is not None:
            released += filt.finish()
        if filt.denied is not None:
            self.denied.append((filt.denied, filt.reason))
            choice["finish_reason"] = "content_filter"
            holder[key] = released
            return True
        if isinstance(text, str) or released:
            holder[key] = released
        if choice.get("logprobs"):
            choice["logprobs"] = None  # they spell out the tokens, held or masked ones too
        if released or choice.get("finish_reason") is not None:
            return True
        return holder is not choice and any(k != key for k in holder)  # a role, tool calls: still worth sending

    def _flush(self) -> bytes:
        """Text still held when the backend ended without a finish_reason: one last chunk per choice."""
        out = []
        for index, filt in self._filters.items():
            rest = filt.finish()
            if rest and self._template is not None:
                choice: dict[str, Any] = {"index": index, "finish_reason": None}
                if "text" in self._template["choices"][0]:
                    choice["text"] = rest
                else:
                    choice["delta"] = {"content": rest}
                chunk = {**self._template, "choices": [choice]}
                out.append(b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()
                           + b"\n\n")
        return b"".join(out)
