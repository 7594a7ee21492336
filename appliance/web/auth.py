"""What a route states about its caller: the scope it needs. The key itself was checked (and rate-limited)
by the request guard before the body was read (`appliance.web.guard`); this only reads the verdict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from appliance.errors import Forbidden
from appliance.security.keys import ApiKey, Scope


def caller(request: Request) -> ApiKey:
    """The key the guard verified for this request (every route but health has one)."""
    key: ApiKey = request.state.api_key
    return key


def require(scope: Scope) -> Callable[[Request], Awaitable[ApiKey]]:
    """Dependency: the caller's key allows `scope` (admin allows everything), else 403."""

    async def dependency(request: Request) -> ApiKey:
        key = caller(request)
        if scope == "admin" and key.scope != "admin":
            raise Forbidden(f"key {key.name!r} has scope {key.scope!r}; this route needs 'admin'")
        return key

    return dependency
