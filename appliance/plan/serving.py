"""Memory of serving a model: the two ways serving engines use memory, named by what they do, not by who does
it. A backend declares which one is its own (`Capabilities.memory` in `appliance.backends`):

- `SlotKvMemory`: a KV cache of context × parallel slots allocated up front, layers placed on the GPU as far as
  they fit and the rest on the CPU, fixed compute buffers (llama.cpp).
- `PagedKvMemory`: a paged KV cache that must hold one sequence of max_model_len; on a GPU it reserves its
  utilization share of the whole card when it starts; on CPU a fixed KV space plus its Python runtime (vLLM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.hardware.models import HardwareReport
from appliance.plan.memory import GIB, MIB, RUNTIME_OVERHEAD, MemoryEstimate, MemoryLine, estimate_of, gpu_capacity
from appliance.plan.shapes import ModelShape
from appliance.profiles.schema import ServingSettings

# Weights after quantization, bytes per parameter (bits per weight of each format / 8).
SERVE_WEIGHT_BYTES = {
    "F16": 2.0, "Q8_0": 8.5 / 8, "Q6_K": 6.5625 / 8, "Q5_K_M": 5.5 / 8, "Q4_K_M": 4.85 / 8,
    "Q4_0": 4.5 / 8, "Q4_1": 5.0 / 8, "awq": 4.5 / 8, "fp8": 1.0, "none": 2.0,
}
KV_BYTES = 2  # f16 K and V entries, the default of llama.cpp and vLLM alike
DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "auto": 2.0}


class ServingMemory(Protocol):
    @property
    def offloads_layers(self) -> bool:
        """Places as many layers on the GPU as fit, the rest on the CPU."""
        ...

    def estimate(self, shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str,
                 tensor_parallel: int = 1) -> MemoryEstimate:
        """Memory of serving the model with these settings (a profile's, or a deployment's resolved)."""
        ...

    def gpu_claim(self, estimate: MemoryEstimate, s: ServingSettings) -> int:
        """Bytes it holds on each GPU while it runs (0 when it keeps everything on the CPU)."""
        ...

    def offload_layers(self, shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str) -> int:
        """Layers of the model that fit on the GPU (-1: all of them)."""
        ...


def serving_weight_bytes(params: float, variant: str) -> int:
    return round(params * SERVE_WEIGHT_BYTES[variant])


def _kv_per_token(shape: ModelShape) -> int:
    return 2 * shape.layers * shape.kv_dim * KV_BYTES


@dataclass(frozen=True)
class SlotKvMemory:
    compute_buffer: int = int(0.25 * GIB)
    offloads_layers: bool = True

    def estimate(self, shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str,
                 tensor_parallel: int = 1) -> MemoryEstimate:
        weights = serving_weight_bytes(shape.params, variant)
        kv = _kv_per_token(shape) * s.context_length * s.parallel_slots
        on_gpu = shape.layers if s.gpu_layers < 0 else min(s.gpu_layers, shape.layers)
        if on_gpu == 0 or not hardware.compute_units():
            return estimate_of("serving", self._lines(weights, kv, s, variant, 1.0), "RAM available",
                               hardware.memory.available_mib * MIB)
        # Offloaded layers bring their weights and their share of the KV cache to the GPU; the rest stays in RAM.
        target, capacity = gpu_capacity(hardware)
        return estimate_of("serving", self._lines(weights, kv, s, variant, on_gpu / shape.layers), target, capacity)

    def _lines(self, weights: int, kv: int, s: ServingSettings, variant: str, share: float) -> list[MemoryLine]:
        part = "" if share == 1.0 else f", {share:.0%} of the layers"
        return [
            MemoryLine(item=f"weights ({variant}{part})", bytes=int(weights * share)),
            MemoryLine(item=f"KV cache ({s.parallel_slots}×{s.context_length} tokens{part})", bytes=int(kv * share)),
            MemoryLine(item="compute buffers", bytes=self.compute_buffer),
        ]

    def gpu_claim(self, estimate: MemoryEstimate, s: ServingSettings) -> int:
        return 0 if s.gpu_layers == 0 else estimate.total_bytes  # what it loads

    def offload_layers(self, shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str) -> int:
        _, capacity = gpu_capacity(hardware)
        if capacity is None:
            return 0
        per_layer = (serving_weight_bytes(shape.params, variant)
                     + _kv_per_token(shape) * s.context_length * s.parallel_slots) / shape.layers
        layers = int((capacity - self.compute_buffer) // per_layer)
        return -1 if layers >= shape.layers else max(0, layers)


@dataclass(frozen=True)
class PagedKvMemory:
    engine: str  # who serves this way, for the estimate's lines
    kv_space_setting: str  # the setting that sizes its KV space on CPU
    cpu_kv_cache_gib: int = 1  # the KV space it is given on CPU (vLLM: VLLM_CPU_KVCACHE_SPACE)
    cpu_runtime: int = int(1.5 * GIB)  # its Python + torch runtime on CPU
    offloads_layers: bool = False

    def estimate(self, shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str,
                 tensor_parallel: int = 1) -> MemoryEstimate:
        if not hardware.compute_units():
            lines = [
                MemoryLine(item=f"weights ({s.dtype}, {self.engine} on CPU)",
                           bytes=int(shape.params * DTYPE_BYTES[s.dtype])),
                MemoryLine(item=f"KV cache ({self.kv_space_setting})", bytes=self.cpu_kv_cache_gib * GIB),
                MemoryLine(item="runtime", bytes=self.cpu_runtime),
            ]
            return estimate_of("serving", lines, "RAM available", hardware.memory.available_mib * MIB)
        # Pages its KV cache: it must hold at least one max_model_len sequence; more only adds concurrency.
        max_len = s.max_model_len or s.context_length
        lines = [
            MemoryLine(item=f"weights ({variant}, /{tensor_parallel} GPUs)",
                       bytes=serving_weight_bytes(shape.params, variant) // tensor_parallel),
            MemoryLine(item=f"KV cache (1×{max_len} tokens)", bytes=_kv_per_token(shape) * max_len // tensor_parallel),
            MemoryLine(item="runtime", bytes=RUNTIME_OVERHEAD["gpu"]),
        ]
        target, capacity = gpu_capacity(hardware)
        util = s.gpu_memory_utilization or 0.9
        usable = None if capacity is None else int(capacity * util)
        return estimate_of("serving", lines, f"{target} × {util:g} utilization", usable)

    def gpu_claim(self, estimate: MemoryEstimate, s: ServingSettings) -> int:
        # It reserves its utilization share of the whole GPU when it starts (and refuses to start with less).
        return estimate.available_bytes if estimate.available_bytes is not None else estimate.total_bytes

    def offload_layers(self, shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str) -> int:
        return -1  # all or nothing: it does not split layers between GPU and CPU


def plan_beside_live(live_claim: int, live_item: str, candidate_claim: int, candidate_item: str,
                     hardware: HardwareReport) -> MemoryEstimate:
    """A blue/green candidate and the live backend on the GPUs at once. (On CPU the candidate's own check is
    against RAM available now, which already has the live backend in it.)"""
    target, capacity = gpu_capacity(hardware)
    lines = [MemoryLine(item=f"live backend ({live_item})", bytes=live_claim),
             MemoryLine(item=f"candidate ({candidate_item})", bytes=candidate_claim)]
    return estimate_of("serving", lines, target, capacity)
