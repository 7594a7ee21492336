"""A streamed chat answer (SSE chunks) as the Responses API's event stream: response.created, the file search's
events, output items and content parts, output_text deltas as they arrive, function-call arguments, then
response.completed (or incomplete, or failed after an `error` event)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from appliance.gateway.responses_items import Json, Turn, function_item, status_of, usage_of


class _Events:
    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class _Answer:
    """What the chat stream said so far."""

    def __init__(self) -> None:
        self.text = ""
        self.calls: dict[int, Json] = {}
        self.finish_reason: str | None = None
        self.usage: Json | None = None
        self.error: Json | None = None

    def chunk(self, chunk: Json) -> str:
        """Take one chat chunk; returns its text delta."""
        if isinstance(chunk.get("error"), dict):
            self.error = chunk["error"]
            return ""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        delta_text = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            delta_text += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(int(call.get("index", 0)), {"id": "", "type": "function",
                                                                          "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self.text += delta_text
        return delta_text


async def _chunks(body: AsyncIterable[Any]) -> AsyncIterator[Json]:
    pending = b""
    async for part in body:
        pending += part.encode() if isinstance(part, str) else bytes(part)
        while (cut := pending.find(b"\n\n")) >= 0:
            event, pending = pending[:cut].strip(), pending[cut + 2:]
            if event.startswith(b"data:") and event[5:].strip() != b"[DONE]":
                try:
                    yield json.loads(event[5:])
                except ValueError:
                    continue


async def stream_response(turn: Turn, chat: AsyncIterable[Any],
                          done: Callable[[Json, Json], None]) -> AsyncIterator[bytes]:
    """The event stream of `turn` from the chat stream `chat`; `done(response, kept_assistant_message)` when it
    completes (to keep the turn for a follow-up). The chat stream is closed with it (an app that hangs up
    releases the backend's slot)."""
    try:
        async for part in _events(turn, chat, done):
            yield part
    finally:
        closing = getattr(chat, "aclose", None)
        if closing is not None:
            await closing()


async def _events(turn: Turn, chat: AsyncIterable[Any],
                  done: Callable[[Json, Json], None]) -> AsyncIterator[bytes]:
    event, answer = _Events(), _Answer()
    yield event("response.created", response=turn.response([], "in_progress", None))
    yield event("response.in_progress", response=turn.response([], "in_progress", None))
    output: list[Json] = []
    if turn.search is not None:
        for kind in ("response.output_item.added", "response.file_search_call.in_progress",
                     "response.file_search_call.searching", "response.file_search_call.completed",
                     "response.output_item.done"):
            item = {"item": turn.search} if kind.startswith("response.output_item") else {"item_id": turn.search["id"]}
            yield event(kind, output_index=0, **item)
        output.append(turn.search)
    index, started = len(output), False
    async for chunk in _chunks(chat):
        delta = answer.chunk(chunk)
        if delta and not started:
            started = True
            yield event("response.output_item.added", output_index=index, item={**turn.message_item(""),
                                                                                "status": "in_progress", "content": []})
            yield event("response.content_part.added", item_id=turn.message_id, output_index=index, content_index=0,
                        part={"type": "output_text", "text": "", "annotations": []})
        if delta:
            yield event("response.output_text.delta", item_id=turn.message_id, output_index=index, content_index=0,
                        delta=delta, logprobs=[])
    async for part in _ending(turn, answer, event, output, index, started, done):
        yield part


async def _ending(turn: Turn, answer: _Answer, event: _Events, output: list[Json], index: int, started: bool,
                  done: Callable[[Json, Json], None]) -> AsyncIterator[bytes]:
    if answer.error is not None:
        failed = turn.response(output, "failed", usage_of(answer.usage))
        failed["error"] = {"code": str(answer.error.get("code") or "backend_error"),
                           "message": str(answer.error.get("message") or "the answer failed")}
        yield event("error", code=failed["error"]["code"], message=failed["error"]["message"], param=None)
        yield event("response.failed", response=failed)
        return
    if started or not answer.calls:
        message = turn.message_item(answer.text)
        if not started:
            yield event("response.output_item.added", output_index=index, item={**message, "content": []})
        part = message["content"][0]
        yield event("response.output_text.done", item_id=turn.message_id, output_index=index, content_index=0,
                    text=answer.text, logprobs=[])
        yield event("response.content_part.done", item_id=turn.message_id, output_index=index, content_index=0,
                    part=part)
        yield event("response.output_item.done", output_index=index, item=message)
        output.append(message)
    for call in (answer.calls[i] for i in sorted(answer.calls)):
        item = function_item(call)
        at = len(output)
        yield event("response.output_item.added", output_index=at, item={**item, "arguments": ""})
        yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=at,
                    delta=item["arguments"])
        yield event("response.function_call_arguments.done", item_id=item["id"], output_index=at,
                    arguments=item["arguments"])
        yield event("response.output_item.done", output_index=at, item=item)
        output.append(item)
    status, reason = status_of(answer.finish_reason)
    final = turn.response(output, status, usage_of(answer.usage), reason)
    kept = {"role": "assistant", "content": answer.text or None,
            **({"tool_calls": [answer.calls[i] for i in sorted(answer.calls)]} if answer.calls else {})}
    done(final, kept)
    yield event("response.completed" if status == "completed" else "response.incomplete", response=final)
