"""Prometheus metrics of the gateway, the supervised backends and the GPUs, in one registry per app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from appliance.hardware.nvml import sample_gpus

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class _LiveCollector(Collector):
    """Values read at scrape time: backend restarts and NVML samples."""

    def __init__(self, restarts: Callable[[], dict[str, int]], nvml_lib: Any) -> None:
        self._restarts = restarts
        self._nvml = nvml_lib

    def collect(self) -> Iterator[Any]:
        restarts = CounterMetricFamily("slm_backend_restarts", "Backend process restarts", labels=["deployment"])
        for name, count in self._restarts().items():
            restarts.add_metric([name], count)
        yield restarts
        gauges = {
            "utilization_pct": GaugeMetricFamily("slm_gpu_utilization_percent", "GPU utilisation", labels=["gpu"]),
            "memory_used_mib": GaugeMetricFamily("slm_gpu_memory_used_mib", "GPU memory used", labels=["gpu"]),
            "temperature_c": GaugeMetricFamily("slm_gpu_temperature_celsius", "GPU temperature", labels=["gpu"]),
            "power_w": GaugeMetricFamily("slm_gpu_power_watts", "GPU power draw", labels=["gpu"]),
        }
        for sample in sample_gpus(self._nvml):
            for field, family in gauges.items():
                value = getattr(sample, field)
                if value is not None:
                    family.add_metric([str(sample.index)], float(value))
        yield from gauges.values()


class GatewayMetrics:
    def __init__(self, restarts: Callable[[], dict[str, int]], nvml_lib: Any,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["deployment"]
        self.requests = Counter("slm_requests", "Inference requests", [*labels, "endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("slm_request_duration_seconds", "Request latency", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("slm_time_to_first_token_seconds", "Time to first streamed byte", labels,
                              buckets=TTFT_BUCKETS, registry=self.registry)
        self.stream_errors = Counter("slm_stream_errors", "Streams a backend failure ended with an error event "
                                     "(no [DONE])", [*labels, "reason"], registry=self.registry)
        self.tokens = Counter("slm_tokens", "Tokens processed", [*labels, "direction"], registry=self.registry)
        self.queue_depth = Gauge("slm_queue_depth", "Requests waiting for a backend slot", labels,
                                 registry=self.registry)
        self.inflight = Gauge("slm_inflight_requests", "Requests being served", labels, registry=self.registry)
        self.guardrail_blocks = Counter("slm_guardrail_blocks", "Requests refused or answers ended by a guardrail",
                                        [*labels, "rule", "direction", "reason"], registry=self.registry)
        self.guardrail_rewrites = Counter("slm_guardrail_rewrites", "Requests or answers a guardrail masked",
                                          [*labels, "direction"], registry=self.registry)
        self.guard_verdicts = Counter("slm_guardrail_guard_verdicts", "Guard model verdicts (safe, unsafe, "
                                      "timeout, error, unknown) and what they decided",
                                      [*labels, "direction", "verdict", "decision"], registry=self.registry)
        self.registry.register(_LiveCollector(restarts, nvml_lib))
