"""What the sync and the async client share around one request: its options and decoding its answer."""

from __future__ import annotations

from typing import Any

import httpx

from appliance.client.calls import Form, Reader
from appliance.client.errors import ApiError, check


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def options(params: dict[str, Any] | None, json: Any, timeout: float | httpx.Timeout | None,
            form: Form | None = None) -> dict[str, Any]:
    """httpx keyword arguments; a timeout of None is left out so the client's default applies."""
    kwargs: dict[str, Any] = {"params": params, "json": json}
    if form is not None:
        kwargs["files"], kwargs["data"] = form
    if timeout is not None:
        kwargs["timeout"] = timeout
    return kwargs


def decode(method: str, path: str, response: httpx.Response, read: Reader) -> Any:
    """The answer's value; ApiError for an error status or a body `read` cannot decode."""
    check(method, path, response)
    try:
        return read(response)
    except ValueError as exc:
        raise ApiError("Bad response", f"{method} {path}: not JSON") from exc
