"""What the `/v1/files` and `/v1/vector_stores` routes share: the retrieval service, a JSON body parsed into one of
the retrieval's request models (a 400 naming the field, never a 500), the query parameters of a list page, and
the service's synchronous methods (SQLite, small files) run off the event loop. Every route needs an `inference`
key (apps upload and search; an admin key passes too); the guard checked it before the body was read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from appliance.errors import BadRequest
from appliance.validation import where_and_why
from appliance.web.auth import require

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
INFERENCE = [Depends(require("inference"))]
Order = Literal["asc", "desc"]

# A list page's parameters, as OpenAI's: `limit` 1 to 100 (default 20), `order` by creation, cursors by id.
LIMIT = Query(20, ge=1, le=100, description="How many objects, 1 to 100.")
ORDER = Query("desc", description="By creation time: `asc` or `desc`.")
AFTER = Query(None, max_length=128, description="An object id: the page after it.")
BEFORE = Query(None, max_length=128, description="An object id: the page before it.")


async def body_of(request: Request, model: type[M]) -> M:
    """The request's JSON object as `model` (an empty body as `{}`).

    Raises:
        BadRequest: not JSON, not an object, or a field the model refuses (named in `param`).
    """
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        param, why = where_and_why(exc)
        raise BadRequest(f"{param}: {why}" if param else why, param=param or None,
                         code="invalid_parameter") from exc
    except ValueError as exc:  # a check after validation (a chunking strategy's overlap)
        raise BadRequest(str(exc), code="invalid_parameter") from exc


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """A synchronous service method on a worker thread (it touches SQLite and files)."""
    return await asyncio.to_thread(function, *args)


def answer(value: BaseModel) -> JSONResponse:
    """A retrieval object as OpenAI shapes it."""
    return JSONResponse(value.model_dump(mode="json"))
