"""Errors to JSON, in one place. Every error body has the OpenAI shape `{"error": {"message", "type", "code",
"param"}}`, on /v1 and on the control API alike; any `ApplianceError` a route lets through gets its own status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.errors import ApplianceError
from appliance.logs import REQUEST_ID

log = logging.getLogger(__name__)


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, object]:
    """OpenAI's error object, with the request's id (X-Request-Id) to quote in a report."""
    error: dict[str, object] = {"message": message, "type": type_, "code": code, "param": param}
    request_id = REQUEST_ID.get()
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def error_response(exc: ApplianceError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), exc.status, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApplianceError)
    async def _domain(_: Request, exc: ApplianceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        if first.get("type") == "json_invalid":
            message = f"request body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}"
        else:
            message = f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}"
        return JSONResponse(
            error_body(message, "invalid_request_error", "invalid_parameter", ".".join(loc) or None), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "invalid_request_error")
        return JSONResponse(error_body(str(exc.detail), kind, f"http_{exc.status_code}"), exc.status_code,
                            getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(error_body("internal error; see the daemon log", "internal_error", "internal_error"),
                            500)
