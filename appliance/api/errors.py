"""One typed error hierarchy, mapped to JSON in one place. Every error body has the OpenAI shape
`{"error": {"message", "type", "code", "param"}}`, on /v1 and on the control API alike."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    type = "internal_error"
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code:
            self.code = code


class BadRequest(ApiError):
    status, type, code = 400, "invalid_request_error", "bad_request"


class Unauthorized(ApiError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(ApiError):
    status, type, code = 403, "permission_error", "insufficient_scope"


class NotFound(ApiError):
    status, type, code = 404, "not_found_error", "not_found"


class Conflict(ApiError):
    status, type, code = 409, "conflict_error", "conflict"


class DoesNotFit(ApiError):
    """The request is well-formed but this box cannot run it (memory, disk): the message has the numbers."""

    status, type, code = 422, "insufficient_resources", "does_not_fit"


class TooManyRequests(ApiError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class Unavailable(ApiError):
    status, type, code = 503, "service_unavailable", "unavailable"


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), exc.status, exc.headers)

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
