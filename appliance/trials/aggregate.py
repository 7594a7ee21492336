"""A shadow's aggregates over its newest pairs: running sums updated as each pair comes in and as the oldest
leaves (O(1) a pair), so a summary costs nothing to read however often the API, the TUI and the metrics ask."""

from __future__ import annotations

from collections import Counter, deque

from appliance.trials.compare import PairFigures
from appliance.trials.models import BUCKETS, Bucket, ShadowSummary, bucket_of

MEANS = ("agreement", "chrf", "cosine", "length_delta_chars", "length_delta_tokens", "latency_delta_s")


def _value(figures: PairFigures, name: str) -> float | None:
    value = getattr(figures, name)
    return None if value is None else float(value)


class Window:
    """The newest `keep` pairs' figures of one (live, candidate) shadow and their sums."""

    def __init__(self, live: str, candidate: str, keep: int) -> None:
        self.live, self.candidate, self.keep = live, candidate, keep
        self._pairs: deque[tuple[float, PairFigures]] = deque()
        self._sums: dict[str, float] = dict.fromkeys(MEANS, 0.0)
        self._counts: dict[str, int] = dict.fromkeys(MEANS, 0)
        self._exact = 0
        self._histogram = [0] * BUCKETS
        self._refusals: dict[str, Counter[str]] = {"live": Counter(), "candidate": Counter()}
        # Since the runner started (not restored from the store):
        self.offered = self.dropped = self.embed_failures = self.unstored = self.withdrawn = 0

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, figures: PairFigures, at: float) -> None:
        """One more pair; the oldest leaves once there are `keep`."""
        if len(self._pairs) >= self.keep:
            _, oldest = self._pairs.popleft()
            self._apply(oldest, -1)
        self._pairs.append((at, figures))
        self._apply(figures, 1)

    def _apply(self, figures: PairFigures, sign: int) -> None:
        for name in MEANS:
            value = _value(figures, name)
            if value is not None:
                self._sums[name] += sign * value
                self._counts[name] += sign
        self._exact += sign * figures.exact
        self._histogram[bucket_of(figures.agreement)] += sign
        for side, why in (("live", figures.live_refusal), ("candidate", figures.candidate_refusal)):
            if why is not None:
                self._refusals[side][why] += sign

    def mean(self, name: str) -> float | None:
        count = self._counts[name]
        if not count:
            return None
        # Clamped: sums added and taken away may drift by an ulp past a bound (an agreement of 1.0000000000000002).
        mean = self._sums[name] / count
        return min(1.0, max(0.0, mean)) if name == "agreement" else mean

    def summary(self) -> ShadowSummary:
        count = len(self._pairs)
        means = {name: (None if (m := self.mean(name)) is None else round(m, 6)) for name in MEANS}
        return ShadowSummary(
            live=self.live, candidate=self.candidate, pairs=count, keep=self.keep,
            agreement_mean=means["agreement"], exact_rate=round(self._exact / count, 6) if count else None,
            chrf_mean=means["chrf"], cosine_mean=means["cosine"], cosine_pairs=self._counts["cosine"],
            length_delta_chars_mean=means["length_delta_chars"],
            length_delta_tokens_mean=means["length_delta_tokens"], latency_delta_s_mean=means["latency_delta_s"],
            live_refusals={k: v for k, v in self._refusals["live"].items() if v},
            candidate_refusals={k: v for k, v in self._refusals["candidate"].items() if v},
            histogram=[Bucket(lower=i / BUCKETS, upper=(i + 1) / BUCKETS, count=n)
                       for i, n in enumerate(self._histogram)],
            offered=self.offered, dropped=self.dropped, embed_failures=self.embed_failures, unstored=self.unstored,
            withdrawn=self.withdrawn,
            since=self._pairs[0][0] if self._pairs else None)
