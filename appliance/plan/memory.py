"""The memory planner: what training a model of N parameters under a profile will need, and whether this box
has it (serving: `plan.serving`). Later stages refuse work that will not fit instead of dying of OOM."""

from __future__ import annotations

from dataclasses import dataclass
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
# What one optimizer step runs: sft (one sequence per example); preference = DPO (chosen and rejected, a frozen
# reference forward); orpo (chosen and rejected, no reference); kto (the completion and a mismatched one for the
# KL term, a reference forward).
TrainingStep = Literal["sft", "preference", "orpo", "kto"]
SEQUENCES_PER_EXAMPLE: dict[str, int] = {"sft": 1, "preference": 2, "orpo": 2, "kto": 2}
Layout = Literal["single", "ddp", "fsdp"]


@dataclass(frozen=True)
class Parallel:
    """How many training processes and how they share the model: one; DDP (each holds the whole model and its
    own micro-batch); FSDP (weights, gradients and optimizer state sharded over the processes)."""

    processes: int = 1
    layout: Layout = "single"

    def describe(self, device: str) -> str:
        if self.processes == 1:
            return ""
        plural = device + ("es" if device.endswith("s") else "s")
        return f" per {device}, {self.layout.upper()} over {self.processes} {plural}"


SINGLE = Parallel()


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
                available: int | None, layout: str = "") -> MemoryEstimate:
    """`layout`: how the figures are counted when several processes train (" per GPU, DDP over 2 GPUs")."""
    total = sum(line.bytes for line in lines)
    parts = " + ".join(f"{line.item} {_gib(line.bytes)}" for line in lines)
    if available is None:
        fits, verdict = False, f"{target} unknown: cannot confirm it fits"
    else:
        fits = total <= available
        verdict = f"{target} {_gib(available)}: {'fits' if fits else 'does NOT fit'}"
    message = f"{kind} needs {_gib(total)} ({parts}){layout}; {verdict}"
    return MemoryEstimate(kind=kind, lines=lines, total_bytes=total, target=target,
                          available_bytes=available, fits=fits, message=message)


def gpu_capacity(hardware: HardwareReport) -> tuple[str, int | None]:
    units = hardware.compute_units()
    sizes = [u.memory_mib for u in units]
    if not units or any(s is None for s in sizes):
        return "VRAM", None
    smallest = min(s for s in sizes if s is not None)
    return f"VRAM per GPU ({smallest} MiB)", smallest * MIB


def _weight_lines(shape: ModelShape, training: TrainingRecipe, step: TrainingStep,
                  parallel: Parallel) -> list[MemoryLine]:
    if training.method == "full":
        shards = parallel.processes if parallel.layout == "fsdp" else 1
        sharded = f", sharded over {shards}" if shards > 1 else ""
        lines = [MemoryLine(item=f"weights+grads+AdamW (16 B/param{sharded})",
                            bytes=int(shape.params * FULL_FT_BYTES / shards))]
        if step in ("preference", "kto"):  # a full fine-tune's reference is a frozen 16-bit copy of the base
            lines.append(MemoryLine(item="reference model (16-bit copy)", bytes=int(shape.params * 2 / shards)))
        return lines
    per_param = QLORA_WEIGHT_BYTES if training.method == "qlora-4bit" else TRAIN_WEIGHT_BYTES[training.precision]
    lora = lora_parameters(shape, training.lora_r, training.target_modules)
    # LoRA's reference is the same base with the adapter disabled: no second copy of the weights.
    return [MemoryLine(item=f"base weights ({training.method})", bytes=int(shape.params * per_param)),
            MemoryLine(item=f"LoRA r={training.lora_r} state ({lora / 1e6:.2f}M params)",
                       bytes=int(lora * LORA_STATE_BYTES))]


def plan_training(shape: ModelShape, training: TrainingRecipe, hardware: HardwareReport, step: TrainingStep = "sft",
                  precompute_ref: bool = False, parallel: Parallel = SINGLE) -> MemoryEstimate:
    """Peak memory of one training process under these settings (a profile's, or a job's resolved ones) for one
    step of `step`; with several processes, per process (per GPU), compared with what each one has.

    `precompute_ref`: the reference model's log-probs are computed once before training, so a step runs no
    reference forward (preference and kto steps)."""
    lines = _weight_lines(shape, training, step, parallel)
    sequences, seq = training.batch_size * SEQUENCES_PER_EXAMPLE[step], training.max_seq_length
    act_precision = "fp32" if training.precision == "fp32" else "bf16"
    what = f"{training.batch_size}×{seq}" if step == "sft" else f"{training.batch_size}×2×{seq}"
    lines.append(MemoryLine(
        item=f"activations ({what} tokens)",
        bytes=_activation_bytes(shape, sequences, seq, act_precision, training.gradient_checkpointing,
                                fused_attention=training.method != "lora-cpu"),
    ))
    # fp32 logits and their gradient over the whole vocabulary.
    lines.append(MemoryLine(item="logits", bytes=sequences * seq * shape.vocab * 4 * 2))
    if step in ("preference", "kto") and not precompute_ref:  # the frozen reference's logits, no gradient
        lines.append(MemoryLine(item="reference forward", bytes=sequences * seq * shape.vocab * 4))
    on_cpu = training.method == "lora-cpu"
    lines.append(MemoryLine(item="runtime", bytes=RUNTIME_OVERHEAD["cpu" if on_cpu else "gpu"]))
    if on_cpu:  # the processes share the box's RAM
        available = hardware.memory.available_mib * MIB // parallel.processes
        target = "RAM available" if parallel.processes == 1 else f"RAM available ÷ {parallel.processes}"
        return estimate_of("training", lines, target, available, parallel.describe("process"))
    target, capacity = gpu_capacity(hardware)
    return estimate_of("training", lines, target, capacity, parallel.describe("GPU"))
