"""Tokens and requests per API key and model: Prometheus counters (labelled by key *name*, a bounded set the
operator creates, never by token), hourly rows in the store for `GET /api/v1/usage`, and daily token quotas.

A request is counted when it ends, from the backend's own figures (llama-server's timings, or the OpenAI
`usage` object vLLM and embeddings send). A store write that fails is logged and dropped: accounting never
fails an answer that was already given."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from appliance.errors import TooManyRequests
from appliance.security.keys import ApiKey
from appliance.state.store import StateStore

log = logging.getLogger(__name__)
_USAGE = re.compile(rb'"(prompt_tokens|completion_tokens)":(\d+)')
_TIMINGS = re.compile(rb'"(cache_n|prompt_n|predicted_n)":(\d+)')
DAY_S = 86400


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    completion: int = 0


def tokens_in(tail: bytes) -> Tokens:
    """The token counts in the end of an answer: its `usage` object, else llama-server's `timings`."""
    usage = {k.decode(): int(v) for k, v in _USAGE.findall(tail)}
    if usage:
        return Tokens(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
    timings = {k.decode(): int(v) for k, v in _TIMINGS.findall(tail)}
    return Tokens(timings.get("cache_n", 0) + timings.get("prompt_n", 0), timings.get("predicted_n", 0))


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class UsageMeter:
    def __init__(self, store: StateStore, registry: CollectorRegistry) -> None:
        self.store = store
        labels = ["key", "deployment"]
        self.requests = Counter("slm_key_requests", "Inference requests per API key", labels, registry=registry)
        self.tokens = Counter("slm_key_tokens", "Tokens per API key", [*labels, "direction"], registry=registry)
        self._today: dict[str, tuple[int, int]] = {}  # key id -> (UTC day, tokens used that day)

    def check_quota(self, key: ApiKey) -> None:
        """Raises QuotaExceeded (429, Retry-After: until UTC midnight) when the key used its daily tokens."""
        if key.daily_token_quota is None:
            return
        used = self.used_today(key.id)
        if used >= key.daily_token_quota:
            wait = DAY_S - int(time.time()) % DAY_S
            raise QuotaExceeded(f"key {key.name!r} used {used} of its {key.daily_token_quota} tokens for today "
                                f"(UTC); the quota resets in {wait} s", headers={"Retry-After": str(wait)})

    def used_today(self, key_id: str) -> int:
        day = int(time.time()) // DAY_S
        cached = self._today.get(key_id)
        if cached is None or cached[0] != day:
            row = self.store.query_one(
                "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS used FROM usage "
                "WHERE key_id = ? AND hour >= ?", (key_id, day * 24))
            cached = (day, int(row["used"]) if row else 0)
            self._today[key_id] = cached
        return cached[1]

    def record(self, key: ApiKey, deployment: str, tokens: Tokens) -> None:
        self.requests.labels(key.name, deployment).inc()
        self.tokens.labels(key.name, deployment, "in").inc(tokens.prompt)
        self.tokens.labels(key.name, deployment, "out").inc(tokens.completion)
        used = self.used_today(key.id)
        self._today[key.id] = (int(time.time()) // DAY_S, used + tokens.prompt + tokens.completion)
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT INTO usage(hour, key_id, key_name, model, requests, prompt_tokens, completion_tokens) "
                    "VALUES(?, ?, ?, ?, 1, ?, ?) ON CONFLICT(hour, key_id, model) DO UPDATE SET "
                    "requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                    "completion_tokens = completion_tokens + excluded.completion_tokens",
                    (int(time.time()) // 3600, key.id, key.name, deployment, tokens.prompt, tokens.completion))
        except sqlite3.Error as exc:
            log.warning("usage not recorded", extra={"key": key.name, "deployment": deployment, "error": str(exc)})


def usage_summary(store: StateStore, since: float, key: str | None = None,
                  model: str | None = None) -> list[dict[str, object]]:
    """Totals per key name and model from the hour holding `since` on."""
    sql = ("SELECT key_name AS key, model, SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens, "
           "SUM(completion_tokens) AS completion_tokens FROM usage WHERE hour >= ?")
    params: list[object] = [int(since) // 3600]
    if key:
        sql += " AND key_name = ?"
        params.append(key)
    if model:
        sql += " AND model = ?"
        params.append(model)
    rows = store.query(sql + " GROUP BY key_name, model ORDER BY key_name, model", tuple(params))
    return [{**dict(r), "total_tokens": r["prompt_tokens"] + r["completion_tokens"]} for r in rows]
