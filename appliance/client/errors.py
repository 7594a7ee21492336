"""What goes wrong talking to the daemon, as one error type with a title and a message for the operator."""

from __future__ import annotations

import httpx

# Failures that mean nobody answers (not: the daemon answered badly).
_CONNECT_FAILED = (httpx.ConnectError, httpx.ConnectTimeout)
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


class ApiError(Exception):
    """The daemon refused a request or could not be asked; `message` is the daemon's own words when it
    answered (OpenAI-shaped error body), `status` its HTTP status (None when there was no answer)."""

    def __init__(self, title: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.status = status


class DaemonUnreachable(ApiError):
    """No answer at all: connection refused, reset or timed out. `message` starts with the base URL."""


class CredentialsError(ApiError):
    """No usable API key; the message says where it looked."""


def error_message(response: httpx.Response) -> str:
    """The daemon's explanation of a failed response: `{"error": {"message": ...}}`, else the body's text."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:300] or response.reason_phrase


def check(method: str, path: str, response: httpx.Response) -> None:
    """Raises ApiError for a 4xx/5xx response (its body must have been read)."""
    if response.status_code >= 400:
        raise ApiError(f"{method} {path} → {response.status_code}", error_message(response), response.status_code)


def transport_error(exc: httpx.HTTPError, base_url: str, method: str, path: str, *,
                    streaming: bool = False) -> ApiError:
    """The ApiError for an httpx failure. A stream that breaks mid-way was reached, so it is not "unreachable"."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, _CONNECT_FAILED if streaming else _CONNECT_FAILED + _DROPPED):
        return DaemonUnreachable("Daemon unreachable", f"{base_url}: {reason}")
    if streaming:
        return ApiError("Stream interrupted", f"lost the event stream of {path}: {reason}")
    return ApiError("Request failed", f"{method} {path}: {reason}")
