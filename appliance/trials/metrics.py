"""Prometheus metrics of the shadows, labelled by the live deployment (`deployment`) and its `candidate`.

Counters (exported with `_total`): `slm_shadow_pairs`, `slm_shadow_dropped` (offered requests lost: queue full
or stopping), `slm_shadow_unstored` (compared but not stored), `slm_shadow_withdrawn` (asks given up for live
traffic on shared cores, asked again later), `slm_shadow_embed_failures`. The histogram
`slm_shadow_agreement` (lifetime). Gauges over the newest pairs the summary is computed from:
`slm_shadow_window_pairs`, `slm_shadow_agreement_mean`, `slm_shadow_exact_match_ratio`, `slm_shadow_chrf_mean`,
`slm_shadow_cosine_mean`, `slm_shadow_length_delta_chars_mean`, `slm_shadow_latency_delta_seconds_mean`,
`slm_shadow_refusal_ratio{side}`; `slm_shadow_queue_depth`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from appliance.trials.aggregate import Window

AGREEMENT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
LABELS = ["deployment", "candidate"]
# gauge name → (help, the window's figure)
MEANS = {
    "slm_shadow_agreement_mean": ("Mean agreement (0 to 1) of a shadow's newest pairs", "agreement"),
    "slm_shadow_chrf_mean": ("Mean chrF (0 to 100) of a shadow's newest pairs", "chrf"),
    "slm_shadow_cosine_mean": ("Mean embedding cosine of a shadow's newest pairs", "cosine"),
    "slm_shadow_length_delta_chars_mean": ("Mean answer length, candidate minus live, characters",
                                           "length_delta_chars"),
    "slm_shadow_latency_delta_seconds_mean": ("Mean latency, candidate minus live, seconds", "latency_delta_s"),
}


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry, queue_depth: Callable[[], int]) -> None:
        self.pairs = Counter("slm_shadow_pairs", "Shadow pairs compared", LABELS, registry=registry)
        self.dropped = Counter("slm_shadow_dropped", "Requests offered to a shadow and dropped (queue full, "
                               "stopping)", LABELS, registry=registry)
        self.withdrawn = Counter("slm_shadow_withdrawn", "Requests to a candidate on the live side's CPU cores "
                                 "withdrawn when live traffic arrived (asked again later)", LABELS, registry=registry)
        self.unstored = Counter("slm_shadow_unstored", "Shadow pairs compared but not stored (redaction or write "
                                "failed)", LABELS, registry=registry)
        self.embed_failures = Counter("slm_shadow_embed_failures", "Shadow pairs whose embeddings could not be "
                                      "fetched", LABELS, registry=registry)
        self.agreement = Histogram("slm_shadow_agreement", "Agreement (0 to 1) of each shadow pair", LABELS,
                                   buckets=AGREEMENT_BUCKETS, registry=registry)
        self.window_pairs = Gauge("slm_shadow_window_pairs", "Pairs a shadow's figures are over", LABELS,
                                  registry=registry)
        self.exact = Gauge("slm_shadow_exact_match_ratio", "Share of a shadow's newest pairs that match exactly "
                           "(normalised)", LABELS, registry=registry)
        self.means = {name: (Gauge(name, help_text, LABELS, registry=registry), figure)
                      for name, (help_text, figure) in MEANS.items()}
        self.refusals = Gauge("slm_shadow_refusal_ratio", "Share of a shadow's newest pairs a side refused "
                              "(error, content filter, empty)", [*LABELS, "side"], registry=registry)
        depth = Gauge("slm_shadow_queue_depth", "Shadow requests waiting for the candidate", registry=registry)
        depth.set_function(queue_depth)

    def update(self, window: Window) -> None:
        """The gauges from a shadow's window (after each pair, and at start)."""
        labels = (window.live, window.candidate)
        summary = window.summary()
        self.window_pairs.labels(*labels).set(summary.pairs)
        self.exact.labels(*labels).set(summary.exact_rate or 0.0)
        for gauge, figure in self.means.values():
            mean = window.mean(figure)
            if mean is not None:
                gauge.labels(*labels).set(mean)
        for side, refused in (("live", summary.live_refusals), ("candidate", summary.candidate_refusals)):
            self.refusals.labels(*labels, side).set(sum(refused.values()) / summary.pairs if summary.pairs else 0.0)

    def forget(self, live: str, candidate: str) -> None:
        """Remove a detached shadow's series."""
        metrics: list[Counter | Gauge | Histogram] = [
            self.pairs, self.dropped, self.unstored, self.withdrawn, self.embed_failures, self.agreement,
            self.window_pairs, self.exact]
        for metric in [*metrics, *(gauge for gauge, _ in self.means.values())]:
            with contextlib.suppress(KeyError):
                metric.remove(live, candidate)
        for side in ("live", "candidate"):
            with contextlib.suppress(KeyError):
                self.refusals.remove(live, candidate, side)
