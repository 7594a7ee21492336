"""The canary split and the outcomes both the canary and the post-switch watch judge.

- `side_for(key_id, salt, weight)`: a key is on the candidate when a hash of the canary's salt and its key id,
  read as a number in [0, 1), is below the weight. The same key always gets the same side for a given canary
  (sticky: one app sees one version), a new canary (a new salt) draws the keys afresh, and raising the weight
  only moves keys from live to candidate (a key's number does not change).
- `Outcomes.record(deployment, arm, status, latency_s, blocked)`: the request path's O(1), no-I/O note of how
  one request went, per deployment and arm (what served it: the canary's `live` or `candidate` side, or after a
  switch the model that served, see `arm_of`). `figures(deployment, arm, since, until)` counts a time window:
  requests, errors (5xx, backend and stream errors), guardrail blocks, p95 latency of the answered ones.
- `thumbs(store, model_id, since, until)`: up and down labels of the app feedback on the answers a model gave
  in a window (the capture tables), a store read the watcher runs off the loop.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field, computed_field

from appliance.state.store import StateStore

Side = Literal["live", "candidate"]
Clock = Callable[[], float]


def draw(key_id: str, salt: str) -> float:
    """The key's number in [0, 1) for a canary's salt (64 bits of BLAKE2b)."""
    digest = hashlib.blake2b(f"{salt}\x00{key_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def side_for(key_id: str, salt: str, weight: float) -> Side:
    """Which side serves this key: the candidate when its number is below `weight` (0 to 1)."""
    return "candidate" if draw(key_id, salt) < weight else "live"


@dataclass(frozen=True)
class Canary:
    """A weighted split of one deployment's traffic between its live version and a candidate deployment. `salt`
    is drawn once per canary and kept with it (a restart must not reshuffle the keys)."""

    deployment: str
    candidate: str
    weight: float
    salt: str = field(default_factory=lambda: secrets.token_hex(8))
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"canary weight {self.weight} is outside 0 to 1")

    def side_for(self, key_id: str) -> Side:
        return side_for(key_id, self.salt, self.weight)


def arm_of(deployment: str, model_id: str) -> str:
    """The recommended arm of a request: the deployment whose backend answered and its model (a canary's two
    sides differ by deployment, a switch's two versions by model)."""
    return f"{deployment}:{model_id}"


class SideFigures(BaseModel):
    """One arm's outcomes over a window."""

    requests: int = 0
    errors: int = 0
    blocked: int = 0
    p95_latency_s: float | None = Field(None, description="Of the requests answered (no error, not blocked)")
    thumbs_up: int = 0
    thumbs_down: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def block_rate(self) -> float | None:
        return self.blocked / self.requests if self.requests else None

    @property
    def rated(self) -> int:
        return self.thumbs_up + self.thumbs_down

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbs_down_rate(self) -> float | None:
        return self.thumbs_down / self.rated if self.rated else None


class Outcome(NamedTuple):
    at: float
    latency_s: float
    error: bool
    blocked: bool


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` 0.95 → p95), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class SideStats:
    """One arm's recent outcomes, newest last: at most `retention_s` old and `max_samples` many."""

    def __init__(self, retention_s: float, max_samples: int) -> None:
        self.retention_s, self.max_samples = retention_s, max_samples
        self._outcomes: deque[Outcome] = deque()

    def record(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        oldest = outcome.at - self.retention_s
        while self._outcomes and (self._outcomes[0].at < oldest or len(self._outcomes) > self.max_samples):
            self._outcomes.popleft()

    def figures(self, since: float, until: float) -> SideFigures:
        """The outcomes recorded from `since` to `until`, both included."""
        requests = errors = blocked = 0
        latencies: list[float] = []
        for outcome in reversed(self._outcomes):
            if outcome.at < since:
                break
            if outcome.at > until:
                continue
            requests += 1
            errors += outcome.error
            blocked += outcome.blocked
            if not outcome.error and not outcome.blocked:
                latencies.append(outcome.latency_s)
        return SideFigures(requests=requests, errors=errors, blocked=blocked,
                           p95_latency_s=percentile(latencies, 0.95))


class Outcomes:
    """Every arm's `SideStats`, by (deployment, arm). Call `record` from the event loop's thread."""

    def __init__(self, *, retention_s: float = 7200.0, max_samples: int = 50_000, clock: Clock = time.time) -> None:
        self.retention_s, self.max_samples, self.clock = retention_s, max_samples, clock
        self._stats: dict[tuple[str, str], SideStats] = {}

    def record(self, deployment: str, arm: str, status: int, latency_s: float, blocked: bool = False,
               error: bool | None = None) -> None:
        """One request's outcome. `error` defaults to a 5xx status; pass True for a stream a backend failure cut
        (200 sent, then an error event). `blocked`: a guardrail refused the request or ended the answer."""
        stats = self._stats.get((deployment, arm))
        if stats is None:
            stats = self._stats[(deployment, arm)] = SideStats(self.retention_s, self.max_samples)
        failed = status >= 500 if error is None else error
        stats.record(Outcome(self.clock(), latency_s, failed, blocked))

    def figures(self, deployment: str, arm: str, since: float, until: float | None = None) -> SideFigures:
        stats = self._stats.get((deployment, arm))
        end = self.clock() if until is None else until
        return stats.figures(since, end) if stats is not None else SideFigures()

    def forget(self, deployment: str) -> None:
        for key in [k for k in self._stats if k[0] == deployment]:
            del self._stats[key]


class Thumbs(NamedTuple):
    up: int
    down: int


def thumbs(store: StateStore, model_id: str, since: float, until: float, deployment: str | None = None) -> Thumbs:
    """Thumbs labels of the feedback on the answers `model_id` gave between `since` and `until` (captured then),
    optionally of one deployment. A store read: off the event loop."""
    sql = ("SELECT COALESCE(SUM(f.label = 1), 0) AS up, COALESCE(SUM(f.label = 0), 0) AS down FROM captures c "
           "JOIN capture_feedback f ON f.response_id = c.response_id "
           "WHERE c.model_id = ? AND c.created_at >= ? AND c.created_at < ?")
    params: tuple[str | float, ...] = (model_id, since, until)
    if deployment is not None:
        sql, params = sql + " AND c.deployment = ?", (*params, deployment)
    row = store.query_one(sql, params)
    return Thumbs(0, 0) if row is None else Thumbs(int(row["up"]), int(row["down"]))
