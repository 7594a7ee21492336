"""API key checks and per-key rate limits, as FastAPI dependencies."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from appliance.core import Appliance
from appliance.errors import Forbidden, TooManyRequests, Unauthorized
from appliance.security.keys import ApiKey, Scope, verify_token


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> float:
        """0 when allowed (and counted), else seconds until the next request would be allowed."""
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require(scope: Scope) -> Callable[[Request], Awaitable[ApiKey]]:
    """Dependency: a valid, unrevoked key whose scope allows `scope` (admin allows everything)."""

    async def dependency(request: Request) -> ApiKey:
        appliance: Appliance = request.app.state.appliance
        limiter: RateLimiter = request.app.state.rate_limiter
        key: ApiKey | None = getattr(request.state, "api_key", None)  # verified by the RequestGuard
        if key is None:
            token = _token_from(request)
            if token is None:
                raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
            key = verify_token(appliance.store, token)
            if key is None:
                raise Unauthorized("invalid or revoked API key")
        if scope == "admin" and key.scope != "admin":
            raise Forbidden(f"key {key.name!r} has scope {key.scope!r}; this route needs 'admin'")
        wait = limiter.check(key.id)
        if wait > 0:
            raise TooManyRequests(
                f"rate limit of {limiter.per_minute} requests per minute exceeded for key {key.name!r}",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        request.state.api_key = key
        return key

    return dependency
