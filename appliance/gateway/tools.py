"""OpenAI tool calling for models whose chat template has no tool support (the starter's has none).

llama-server renders `tools` only through a template that describes them; with one that does not, it drops
them silently and the model answers in prose. Here the gateway does what such a template would: the tools go
into a system message, the answer is constrained to a JSON schema (one of the tools' calls, or, when the model
may choose, a plain reply) by llama-server's own grammar, and the JSON is turned back into `tool_calls` in
OpenAI's shape, streamed as deltas when the client asked for a stream.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from appliance.errors import BadRequest

_INSTRUCTIONS = (
    "You can call these tools. Answer with one JSON object and nothing else: "
    '{{"name": <tool name>, "arguments": <object of the arguments>}} to call a tool{reply}.\n\nTools:\n{tools}'
)


@dataclass(frozen=True)
class ToolPlan:
    """What to send upstream instead of the client's request, and how to read the answer back."""

    upstream: dict[str, Any]
    may_reply: bool  # tool_choice "auto": the model may answer in words instead of calling a tool


def _functions(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list) or not tools:
        raise BadRequest("tools: a non-empty list of tools is required", param="tools", code="invalid_tools")
    functions = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"tools.{i}: only {{'type': 'function', 'function': {{'name': ...}}}} tools are "
                             "supported", param=f"tools.{i}", code="invalid_tools")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        functions.append({"name": function["name"], "description": function.get("description", ""),
                          "parameters": parameters})
    return functions


def _chosen(tool_choice: Any, functions: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The functions the answer may call, and whether it may reply in words instead."""
    if tool_choice in (None, "auto"):
        return functions, True
    if tool_choice == "required":
        return functions, False
    if isinstance(tool_choice, dict) and isinstance(tool_choice.get("function"), dict):
        name = tool_choice["function"].get("name")
        picked = [f for f in functions if f["name"] == name]
        if not picked:
            raise BadRequest(f"tool_choice names {name!r}, which is not in tools", param="tool_choice",
                             code="invalid_tools")
        return picked, False
    raise BadRequest("tool_choice: 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
                     param="tool_choice", code="invalid_tools")


def _schema(functions: list[dict[str, Any]], may_reply: bool) -> dict[str, Any]:
    calls: list[dict[str, Any]] = [
        {"type": "object", "properties": {"name": {"const": f["name"]}, "arguments": f["parameters"]},
         "required": ["name", "arguments"], "additionalProperties": False} for f in functions]
    if may_reply:
        calls.append({"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"],
                      "additionalProperties": False})
    return {"anyOf": calls} if len(calls) > 1 else calls[0]


def _history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier tool calls and results in words the template can render (it has no tool roles either)."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and calls:
            rendered = [{"name": c["function"]["name"], "arguments": json.loads(c["function"].get("arguments")
                                                                                 or "{}")}
                        for c in calls if isinstance(c, dict) and isinstance(c.get("function"), dict)]
            out.append({"role": "assistant", "content": json.dumps(rendered[0] if len(rendered) == 1 else rendered)})
        elif message.get("role") == "tool":
            out.append({"role": "user", "content": f"Tool result: {message.get('content', '')}"})
        else:
            out.append(message)
    return out


def plan_tools(data: dict[str, Any]) -> ToolPlan | None:
    """None when the request needs no tool handling (no tools, or tool_choice 'none': then tools are dropped).

    Raises:
        BadRequest: malformed tools or tool_choice, or tools combined with a response_format.
    """
    if not data.get("tools"):
        return None
    functions = _functions(data["tools"])
    rest = {k: v for k, v in data.items() if k not in ("tools", "tool_choice", "parallel_tool_calls", "stream",
                                                      "stream_options")}
    if data.get("tool_choice") == "none":  # earlier calls and results still in words the template can render
        return ToolPlan({**rest, "messages": _history(list(data.get("messages") or [])), "stream": False},
                        may_reply=True)
    if data.get("response_format"):
        raise BadRequest("tools and response_format cannot be combined", param="response_format",
                         code="invalid_tools")
    chosen, may_reply = _chosen(data.get("tool_choice"), functions)
    described = "\n".join(json.dumps(f) for f in chosen)
    system = _INSTRUCTIONS.format(reply=', or {"reply": <your answer>} to answer directly' if may_reply else "",
                                  tools=described)
    messages = [{"role": "system", "content": system}, *_history(list(data.get("messages") or []))]
    upstream = {**rest, "messages": messages, "stream": False,
                "response_format": {"type": "json_schema", "json_schema": {"name": "tool_call",
                                                                           "schema": _schema(chosen, may_reply)}}}
    return ToolPlan(upstream, may_reply)


def read_answer(plan: ToolPlan, answer: dict[str, Any]) -> dict[str, Any]:
    """The backend's JSON answer as OpenAI's: `tool_calls` with finish_reason 'tool_calls', or the reply."""
    if plan.upstream.get("response_format") is None:
        return answer  # tool_choice "none": a plain answer
    for choice in answer.get("choices", []):
        message = choice.get("message", {})
        try:
            parsed = json.loads(message.get("content") or "")
        except ValueError:
            continue  # cut off (finish_reason 'length'): the text as it is
        if isinstance(parsed, dict) and "name" in parsed:
            message["content"] = None
            message["tool_calls"] = [{"id": f"call_{secrets.token_hex(12)}", "type": "function",
                                      "function": {"name": parsed["name"],
                                                   "arguments": json.dumps(parsed.get("arguments", {}))}}]
            choice["finish_reason"] = "tool_calls"
        elif isinstance(parsed, dict) and "reply" in parsed:
            message["content"] = str(parsed["reply"])
    return answer


async def as_stream(answer: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """A whole answer as OpenAI stream chunks: the role, the content or each tool call, the finish reason."""
    base = {"id": answer.get("id", f"chatcmpl-{secrets.token_hex(8)}"), "object": "chat.completion.chunk",
            "created": answer.get("created", int(time.time())), "model": answer.get("model")}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    for choice in answer.get("choices", []):
        index, message = choice.get("index", 0), choice.get("message", {})
        yield event([{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if message.get("tool_calls"):
            for n, call in enumerate(message["tool_calls"]):
                delta = {"tool_calls": [{"index": n, **call}]}
                yield event([{"index": index, "delta": delta, "finish_reason": None}])
        elif message.get("content"):
            yield event([{"index": index, "delta": {"content": message["content"]}, "finish_reason": None}])
        yield event([{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}])
    if include_usage and answer.get("usage"):
        yield event([], usage=answer["usage"])
    yield b"data: [DONE]\n\n"
