"""The memory planner: what training and serving a model of N parameters under a profile will need, and
whether this box has it. Later stages refuse work that will not fit instead of dying of OOM."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from appliance.hardware.models import HardwareReport
from appliance.plan.shapes import ModelShape
from appliance.profiles.schema import ServingSettings
from appliance.training.settings import TrainingRecipe

GIB = 1024**3
MIB = 1024**2

# Bytes per parameter of the frozen base weights while training.
TRAIN_WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
QLORA_WEIGHT_BYTES = 0.5625  # NF4: 4 bits + one fp32 absmax per 64 weights (double-quantized) ~ 4.5 bits
# Full fine-tune with AdamW in mixed precision: 16-bit weights and grads, fp32 master copy, two moments.
FULL_FT_BYTES = 16.0
# A trainable LoRA parameter: fp32 value, fp32 grad, two fp32 Adam moments.
LORA_STATE_BYTES = 16.0
# Weights after quantization, bytes per parameter (bits per weight of each format / 8).
SERVE_WEIGHT_BYTES = {
    "F16": 2.0, "Q8_0": 8.5 / 8, "Q6_K": 6.5625 / 8, "Q5_K_M": 5.5 / 8, "Q4_K_M": 4.85 / 8,
    "Q4_0": 4.5 / 8, "Q4_1": 5.0 / 8, "awq": 4.5 / 8, "fp8": 1.0, "none": 2.0,
}
KV_BYTES = 2  # f16 K and V entries, the default of both llama.cpp and vLLM
# Python + torch runtime and allocator slack; CPU figure calibrated on SmolLM2-135M LoRA (2.3-2.5 GB RSS).
RUNTIME_OVERHEAD = {"cpu": int(1.2 * GIB), "gpu": int(1.0 * GIB)}
LLAMACPP_COMPUTE_BUFFER = int(0.25 * GIB)
# vLLM's CPU build: the KV cache it is given (VLLM_CPU_KVCACHE_SPACE, GiB) and its Python+torch runtime.
VLLM_CPU_KV_CACHE_GIB = 1
VLLM_CPU_RUNTIME = int(1.5 * GIB)
DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "auto": 2.0}


class MemoryLine(BaseModel):
    item: str
    bytes: int


class MemoryEstimate(BaseModel):
    kind: Literal["training", "serving"]
    lines: list[MemoryLine]
    total_bytes: int
    target: str
    available_bytes: int | None
    fits: bool
    message: str


def lora_parameters(shape: ModelShape, rank: int, target_modules: list[str]) -> int:
    """Trainable parameters of LoRA: rank × (in + out) for every targeted projection in every layer."""
    h, kv, ff = shape.hidden, shape.kv_dim, shape.intermediate
    dims = {
        "q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
        "gate_proj": (h, ff), "up_proj": (h, ff), "down_proj": (ff, h),
    }
    per_layer = sum(sum(dims[m]) for m in target_modules if m in dims)
    return shape.layers * rank * per_layer


def _activation_bytes(shape: ModelShape, batch: int, seq: int, precision: str, checkpointing: bool,
                      fused_attention: bool = False) -> int:
    # Korthikanti et al. 2022: one layer keeps s·b·h·(34 + 5·a·s/h) bytes of 16-bit activations. The 5·a·s/h
    # term is the attention scores; torch's fused attention kernels on CUDA (flash / memory-efficient SDPA)
    # never store them, the CPU's math kernel does.
    scale = 2 if precision == "fp32" else 1
    scores = 0.0 if fused_attention else 5 * shape.heads * seq / shape.hidden
    per_layer = batch * seq * shape.hidden * (34 + scores) * scale
    if not checkpointing:
        return int(per_layer * shape.layers)
    # Checkpointing keeps each layer's input and recomputes one layer at a time.
    return int(batch * seq * shape.hidden * 2 * scale * shape.layers + per_layer)


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def _estimate(kind: Literal["training", "serving"], lines: list[MemoryLine], target: str,
              available: int | None) -> MemoryEstimate:
    total = sum(line.bytes for line in lines)
    parts = " + ".join(f"{line.item} {_gib(line.bytes)}" for line in lines)
    if available is None:
        fits, verdict = False, f"{target} unknown: cannot confirm it fits"
    else:
        fits = total <= available
        verdict = f"{target} {_gib(available)}: {'fits' if fits else 'does NOT fit'}"
    message = f"{kind} needs {_gib(total)} ({parts}); {verdict}"
    return MemoryEstimate(kind=kind, lines=lines, total_bytes=total, target=target,
                          available_bytes=available, fits=fits, message=message)


def _gpu_capacity(hardware: HardwareReport) -> tuple[str, int | None]:
    units = hardware.compute_units()
    sizes = [u.memory_mib for u in units]
    if not units or any(s is None for s in sizes):
        return "VRAM", None
    smallest = min(s for s in sizes if s is not None)
    return f"VRAM per GPU ({smallest} MiB)", smallest * MIB


def gpu_claim(estimate: MemoryEstimate, backend: str) -> int:
    """What a serving process holds on each GPU: vLLM reserves its utilization share of the whole GPU when it
    starts (and refuses to start when less is free); llama.cpp what it loads."""
    if backend == "vllm" and estimate.available_bytes is not None:
        return estimate.available_bytes
    return estimate.total_bytes


def plan_beside_live(live_claim: int, live_item: str, candidate_claim: int, candidate_item: str,
                     hardware: HardwareReport) -> MemoryEstimate:
    """A blue/green candidate and the live backend on the GPUs at once. (On CPU the candidate's own check is
    against RAM available now, which already has the live backend in it.)"""
    target, capacity = _gpu_capacity(hardware)
    lines = [MemoryLine(item=f"live backend ({live_item})", bytes=live_claim),
             MemoryLine(item=f"candidate ({candidate_item})", bytes=candidate_claim)]
    return _estimate("serving", lines, target, capacity)


def plan_training(shape: ModelShape, training: TrainingRecipe, hardware: HardwareReport) -> MemoryEstimate:
    """Peak memory of one training process under these settings (a profile's, or a job's resolved ones)."""
    lines: list[MemoryLine] = []
    if training.method == "full":
        lines.append(MemoryLine(item="weights+grads+AdamW (16 B/param)", bytes=int(shape.params * FULL_FT_BYTES)))
    else:
        per_param = QLORA_WEIGHT_BYTES if training.method == "qlora-4bit" else TRAIN_WEIGHT_BYTES[training.precision]
        lines.append(MemoryLine(item=f"base weights ({training.method})", bytes=int(shape.params * per_param)))
        lora = lora_parameters(shape, training.lora_r, training.target_modules)
        lines.append(MemoryLine(item=f"LoRA r={training.lora_r} state ({lora / 1e6:.2f}M params)",
                                bytes=int(lora * LORA_STATE_BYTES)))
    act_precision = "fp32" if training.precision == "fp32" else "bf16"
    lines.append(MemoryLine(
        item=f"activations ({training.batch_size}×{training.max_seq_length} tokens)",
        bytes=_activation_bytes(shape, training.batch_size, training.max_seq_length, act_precision,
                                training.gradient_checkpointing, fused_attention=training.method != "lora-cpu"),
    ))
    # fp32 logits and their gradient over the whole vocabulary.
    lines.append(MemoryLine(item="logits", bytes=training.batch_size * training.max_seq_length * shape.vocab * 4 * 2))
    on_cpu = training.method == "lora-cpu"
    lines.append(MemoryLine(item="runtime", bytes=RUNTIME_OVERHEAD["cpu" if on_cpu else "gpu"]))
    if on_cpu:
        return _estimate("training", lines, "RAM available", hardware.memory.available_mib * MIB)
    target, capacity = _gpu_capacity(hardware)
    return _estimate("training", lines, target, capacity)


def serving_weight_bytes(params: float, variant: str) -> int:
    return round(params * SERVE_WEIGHT_BYTES[variant])


def plan_serving(shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str,
                 tensor_parallel: int = 1) -> MemoryEstimate:
    """Memory of serving the quantized model with these settings (a profile's, or a deployment's resolved)."""
    weights = serving_weight_bytes(shape.params, variant)
    kv_per_token = 2 * shape.layers * shape.kv_dim * KV_BYTES
    if s.backend == "vllm" and not hardware.compute_units():
        lines = [
            MemoryLine(item=f"weights ({s.dtype}, vLLM on CPU)", bytes=int(shape.params * DTYPE_BYTES[s.dtype])),
            MemoryLine(item="KV cache (VLLM_CPU_KVCACHE_SPACE)", bytes=VLLM_CPU_KV_CACHE_GIB * GIB),
            MemoryLine(item="runtime", bytes=VLLM_CPU_RUNTIME),
        ]
        return _estimate("serving", lines, "RAM available", hardware.memory.available_mib * MIB)
    if s.backend == "vllm":
        # vLLM pages its KV cache: it must hold at least one max_model_len sequence; more only adds concurrency.
        max_len = s.max_model_len or s.context_length
        lines = [
            MemoryLine(item=f"weights ({variant}, /{tensor_parallel} GPUs)", bytes=weights // tensor_parallel),
            MemoryLine(item=f"KV cache (1×{max_len} tokens)", bytes=kv_per_token * max_len // tensor_parallel),
            MemoryLine(item="runtime", bytes=RUNTIME_OVERHEAD["gpu"]),
        ]
        target, capacity = _gpu_capacity(hardware)
        util = s.gpu_memory_utilization or 0.9
        usable = None if capacity is None else int(capacity * util)
        return _estimate("serving", lines, f"{target} × {util:g} utilization", usable)
    tokens = s.context_length * s.parallel_slots
    on_gpu = shape.layers if s.gpu_layers < 0 else min(s.gpu_layers, shape.layers)
    if on_gpu == 0 or not hardware.compute_units():
        return _estimate("serving", _llamacpp_lines(weights, kv_per_token * tokens, s, variant, 1.0),
                         "RAM available", hardware.memory.available_mib * MIB)
    # Offloaded layers bring their weights and their share of the KV cache to the GPU; the rest stays in RAM.
    lines = _llamacpp_lines(weights, kv_per_token * tokens, s, variant, on_gpu / shape.layers)
    target, capacity = _gpu_capacity(hardware)
    return _estimate("serving", lines, target, capacity)


def _llamacpp_lines(weights: int, kv: int, s: ServingSettings, variant: str, share: float) -> list[MemoryLine]:
    part = "" if share == 1.0 else f", {share:.0%} of the layers"
    return [
        MemoryLine(item=f"weights ({variant}{part})", bytes=int(weights * share)),
        MemoryLine(item=f"KV cache ({s.parallel_slots}×{s.context_length} tokens{part})", bytes=int(kv * share)),
        MemoryLine(item="compute buffers", bytes=LLAMACPP_COMPUTE_BUFFER),
    ]


def offload_layers(shape: ModelShape, s: ServingSettings, hardware: HardwareReport, variant: str) -> int:
    """How many of the model's layers llama.cpp can put on the GPU (-1: all of them fit)."""
    _, capacity = _gpu_capacity(hardware)
    if capacity is None:
        return 0
    per_layer = (serving_weight_bytes(shape.params, variant)
                 + 2 * shape.layers * shape.kv_dim * KV_BYTES * s.context_length * s.parallel_slots) / shape.layers
    layers = int((capacity - LLAMACPP_COMPUTE_BUFFER) // per_layer)
    return -1 if layers >= shape.layers else max(0, layers)
