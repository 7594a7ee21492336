"""The one error tree. Every error the appliance reports to a caller is an `ApplianceError`: a message for the
operator, an HTTP status and a machine-readable code, declared on the class. `appliance.web.errors` maps them
to JSON in one place; the domain modules subclass these and never import the web layer."""

from __future__ import annotations

import errno

# The OpenAI error `type` that goes with each status (clients switch on it).
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    409: "conflict_error", 413: "invalid_request_error", 422: "insufficient_resources", 429: "rate_limit_error",
    500: "internal_error", 502: "backend_error", 503: "service_unavailable", 507: "insufficient_resources",
}


class ApplianceError(Exception):
    """Refused or failed, with the reason in words. Subclasses set `status` and `code`."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code:
            self.code = code

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(self.status, "invalid_request_error")


class BadRequest(ApplianceError):
    status, code = 400, "bad_request"


class Unauthorized(ApplianceError):
    status, code = 401, "invalid_api_key"


class Forbidden(ApplianceError):
    status, code = 403, "insufficient_scope"


class NotFound(ApplianceError):
    status, code = 404, "not_found"


class Conflict(ApplianceError):
    status, code = 409, "conflict"


class DoesNotFit(ApplianceError):
    """Well-formed, but this box cannot run it (memory, disk): the message has the numbers."""

    status, code = 422, "does_not_fit"


class StorageFull(ApplianceError):
    """The disk (or quota) of the state directory is full: nothing was changed; free space and try again."""

    status, code = 507, "insufficient_storage"


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT from the file system, SQLite's "database or disk is full", or a library's wrapping of
    ENOSPC (safetensors raises its own error with "No space left on device" in it)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return "disk is full" in text or "No space left on device" in text or "Disk quota exceeded" in text


class TooManyRequests(ApplianceError):
    status, code = 429, "rate_limited"


class Unavailable(ApplianceError):
    status, code = 503, "unavailable"
