"""One token-bucket limiter, used twice by the request guard: requests per API key, and bad keys per client
address (a bucket only failures drain). Each bucket holds `per_minute` tokens and refills continuously."""

from __future__ import annotations

import threading
import time

MAX_BUCKETS = 10_000  # beyond this many keys or addresses, the ones that have refilled are forgotten


class TokenBuckets:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, name: str, now: float) -> float:
        tokens, last = self._buckets.get(name, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)

    def _wait(self, tokens: float) -> float:
        return (1.0 - tokens) * 60.0 / self.per_minute

    def wait_for(self, name: str) -> float:
        """Seconds until `name` has a token (0: now); nothing is taken."""
        with self._lock:
            tokens = self._level(name, time.monotonic())
            return 0.0 if tokens >= 1.0 else self._wait(tokens)

    def take(self, name: str) -> float:
        """Take a token: 0 when there was one, else the seconds until there will be (nothing taken)."""
        now = time.monotonic()
        with self._lock:
            tokens = self._level(name, now)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                return self._wait(tokens)
            self._buckets[name] = (tokens - 1.0, now)
            self._forget_full()
            return 0.0

    def drain(self, name: str) -> None:
        """Take a token whether there is one or not (a failure counts even once the bucket is empty)."""
        now = time.monotonic()
        with self._lock:
            self._buckets[name] = (max(0.0, self._level(name, now) - 1.0), now)
            self._forget_full()

    def _forget_full(self) -> None:
        if len(self._buckets) > MAX_BUCKETS:
            now = time.monotonic()
            for name in [n for n in self._buckets if self._level(n, now) >= self.per_minute - 1]:
                del self._buckets[name]
