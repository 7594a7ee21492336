"""The Responses API in terms of chat completions: a `/v1/responses` request (input items, instructions, tools,
the turns of a previous response) becomes a chat request; a chat answer becomes a Response object with its output
items (file_search_call, function_call, message with file citations). The gateway serves the chat request the
way it serves /v1/chat/completions (policy, capture, canary, admission), so a Response is judged and recorded
as any answer is."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import BadRequest

Json = dict[str, Any]
RANKERS = ("auto", "default-2024-11-15", "none")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


class FileSearchTool(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["file_search"]
    vector_store_ids: list[str] = Field(..., min_length=1)
    max_num_results: int = Field(5, ge=1, le=50)
    filters: Json | None = None
    ranking_options: Json | None = None

    def ranking(self) -> tuple[str, float]:
        """(ranker, score_threshold) from `ranking_options`: OpenAI's rankers (`none`: vector similarity only)
        and a threshold from 0 to 1; other keys are left alone."""
        options = self.ranking_options or {}
        ranker, threshold = options.get("ranker") or "auto", options.get("score_threshold") or 0.0
        if ranker not in RANKERS:
            raise BadRequest(f"ranking_options.ranker: {ranker!r} is not one of {', '.join(RANKERS)}",
                             param="tools.ranking_options.ranker")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            raise BadRequest("ranking_options.score_threshold: a number from 0 to 1",
                             param="tools.ranking_options.score_threshold")
        return str(ranker), float(threshold)


class ResponsesRequest(BaseModel):
    """The fields of `POST /v1/responses` the appliance acts on; the SDK's other fields are accepted and left
    as they are (store, metadata, user, truncation, text, reasoning, service_tier …)."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[Json]
    instructions: str | None = None
    tools: list[Json] = Field(default_factory=list)
    tool_choice: str | Json | None = None
    stream: bool = False
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    store: bool = True
    include: list[str] = Field(default_factory=list)
    metadata: Json | None = None
    parallel_tool_calls: bool = True

    def functions(self) -> list[Json]:
        """The function tools, as chat tools; any other kind but file_search is refused by name."""
        out = []
        for tool in self.tools:
            kind = tool.get("type")
            if kind == "function":
                out.append({"type": "function", "function": {k: tool[k] for k in ("name", "description",
                                                                                   "parameters") if k in tool}})
            elif kind != "file_search":
                raise BadRequest(f"tools: {kind!r} tools are not supported here (function and file_search are)",
                                 param="tools", code="unsupported_tool")
        return out

    def file_search(self) -> FileSearchTool | None:
        found = [t for t in self.tools if t.get("type") == "file_search"]
        return FileSearchTool.model_validate(found[0]) if found else None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict)
                       and p.get("type") in ("input_text", "output_text", "text"))
    return ""


def input_messages(items: str | list[Json]) -> list[Json]:
    """Input items as chat messages: messages (developer as system), function calls and their outputs."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[Json] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = {"developer": "system"}.get(str(item.get("role")), str(item.get("role") or "user"))
            messages.append({"role": role, "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments", "")}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": str(item.get("output"))})
        elif kind != "file_search_call":
            raise BadRequest(f"input: {kind!r} items are not supported here", param="input", code="unsupported_item")
    return messages


def chat_tool_choice(choice: str | Json | None) -> str | Json | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, dict):
        return "auto"  # a hosted tool's choice: file_search runs before the model anyway
    return choice


def chat_body(request: ResponsesRequest, messages: list[Json]) -> Json:
    body: Json = {"model": request.model, "messages": messages, "stream": request.stream}
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    functions = request.functions()
    if functions:
        body["tools"] = functions
        if request.tool_choice is not None:
            body["tool_choice"] = chat_tool_choice(request.tool_choice)
    for mine, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        value = getattr(request, mine)
        if value is not None:
            body[theirs] = value
    return body


@dataclass
class Turn:
    """One Response being made: its ids, the request, the chat messages sent, and what file search found."""

    request: ResponsesRequest
    messages: list[Json]
    id: str = field(default_factory=lambda: new_id("resp"))
    message_id: str = field(default_factory=lambda: new_id("msg"))
    created_at: float = field(default_factory=time.time)
    search: Json | None = None  # the file_search_call item
    citations: list[Json] = field(default_factory=list)  # file_citation annotations (index filled at the end)

    def response(self, output: list[Json], status: str, usage: Json | None, reason: str | None = None) -> Json:
        r = self.request
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "model": r.model, "output": output, "instructions": r.instructions, "tools": r.tools,
            "tool_choice": r.tool_choice or "auto", "temperature": r.temperature, "top_p": r.top_p,
            "parallel_tool_calls": r.parallel_tool_calls, "previous_response_id": r.previous_response_id,
            "max_output_tokens": r.max_output_tokens, "metadata": r.metadata or {}, "error": None,
            "incomplete_details": {"reason": reason} if reason else None, "usage": usage,
            "text": {"format": {"type": "text"}}, "truncation": "disabled", "store": r.store,
        }

    def message_item(self, text: str, status: str = "completed") -> Json:
        annotations = [{**c, "index": len(text)} for c in self.citations]
        return {"type": "message", "id": self.message_id, "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]}


def function_item(call: Json) -> Json:
    function = call.get("function") or {}
    return {"type": "function_call", "id": new_id("fc"), "call_id": call.get("id") or new_id("call"),
            "name": function.get("name", ""), "arguments": function.get("arguments") or "", "status": "completed"}


def usage_of(chat_usage: Json | None) -> Json | None:
    if not chat_usage:
        return None
    prompt, completion = int(chat_usage.get("prompt_tokens") or 0), int(chat_usage.get("completion_tokens") or 0)
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


def status_of(finish_reason: str | None) -> tuple[str, str | None]:
    """(status, incomplete reason) of a Response from its chat answer's finish reason."""
    if finish_reason == "length":
        return "incomplete", "max_output_tokens"
    if finish_reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def from_chat(turn: Turn, answer: Json) -> tuple[Json, Json]:
    """The Response of a whole chat answer, and the assistant message to keep for a follow-up turn."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[Json] = [turn.search] if turn.search else []
    output += [function_item(call) for call in message.get("tool_calls") or ()]
    text = message.get("content") or ""
    if text or not message.get("tool_calls"):
        output.append(turn.message_item(text))
    status, reason = status_of(choice.get("finish_reason"))
    kept = {"role": "assistant", "content": text or None, **({"tool_calls": message["tool_calls"]}
                                                              if message.get("tool_calls") else {})}
    return turn.response(output, status, usage_of(answer.get("usage")), reason), kept
