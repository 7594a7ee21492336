"""Per-deployment request metrics from the daemon's Prometheus text (`GET /metrics`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Histogram:
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (upper bound, cumulative count)
    count: float = 0.0
    total: float = 0.0

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (what Prometheus would interpolate)."""
        if not self.count:
            return None
        rank = q * self.count
        for bound, cumulative in sorted(self.buckets):
            if cumulative >= rank:
                return bound
        return None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class DeploymentMetrics:
    requests: dict[str, float] = field(default_factory=dict)  # by status
    tokens: dict[str, float] = field(default_factory=dict)  # by direction
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)
    queue_depth: float = 0.0
    inflight: float = 0.0
    restarts: float = 0.0


def _histogram(into: Histogram, sample_name: str, labels: dict[str, str], value: float) -> None:
    if sample_name.endswith("_bucket"):
        bound = labels.get("le", "+Inf")
        into.buckets.append((float("inf") if bound == "+Inf" else float(bound), value))
    elif sample_name.endswith("_count"):
        into.count = value
    elif sample_name.endswith("_sum"):
        into.total = value


def parse_metrics(text: str) -> dict[str, DeploymentMetrics]:
    """Group the gateway's series by their `deployment` label; unknown series are ignored."""
    result: dict[str, DeploymentMetrics] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.labels.get("deployment")
            if name is None:
                continue
            m = result.setdefault(name, DeploymentMetrics())
            if family.name == "slm_requests" and sample.name.endswith("_total"):
                status = sample.labels.get("status", "?")
                m.requests[status] = m.requests.get(status, 0.0) + sample.value
            elif family.name == "slm_tokens" and sample.name.endswith("_total"):
                m.tokens[sample.labels.get("direction", "?")] = sample.value
            elif family.name == "slm_request_duration_seconds":
                _histogram(m.latency, sample.name, sample.labels, sample.value)
            elif family.name == "slm_time_to_first_token_seconds":
                _histogram(m.ttft, sample.name, sample.labels, sample.value)
            elif family.name == "slm_queue_depth":
                m.queue_depth = sample.value
            elif family.name == "slm_inflight_requests":
                m.inflight = sample.value
            elif family.name == "slm_backend_restarts":
                m.restarts = sample.value
    return result
