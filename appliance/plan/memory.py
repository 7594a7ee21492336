"""The memory planner: what training a model of N parameters under a profile will need, and whether this box
has it (serving: `plan.serving`). Later stages refuse work that will not fit instead of dying of OOM."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from appliance.hardware.models import HardwareReport
from appliance.plan.shapes import ModelShape
from appliance.profiles.recipe import TrainingRecipe

GIB = 1024**3
MIB = 1024**2

# Bytes per parameter of the frozen base weights while training.
TRAIN_WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
QLORA_WEIGHT_BYTES = 0.5625  # NF4: 4 bits + one fp32 absmax per 64 weights (double-quantized) ~ 4.5 bits
# Full fine-tune with AdamW in mixed precision: 16-bit weights and grads, fp32 master copy, two moments.
FULL_FT_BYTES = 16.0
# A trainable LoRA parameter: fp32 value, fp32 grad, two fp32 Adam moments.
LORA_STATE_BYTES = 16.0
# Python + torch runtime and allocator slack; CPU figure calibrated on SmolLM2-135M LoRA (2.3-2.5 GB RSS).
RUNTIME_OVERHEAD = {"cpu": int(1.2 * GIB), "gpu": int(1.0 * GIB)}


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


def estimate_of(kind: Literal["training", "serving"], lines: list[MemoryLine], target: str,
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


def gpu_capacity(hardware: HardwareReport) -> tuple[str, int | None]:
    units = hardware.compute_units()
    sizes = [u.memory_mib for u in units]
    if not units or any(s is None for s in sizes):
        return "VRAM", None
    smallest = min(s for s in sizes if s is not None)
    return f"VRAM per GPU ({smallest} MiB)", smallest * MIB


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
        return estimate_of("training", lines, "RAM available", hardware.memory.available_mib * MIB)
    target, capacity = gpu_capacity(hardware)
    return estimate_of("training", lines, target, capacity)
