"""Rendering for the CLI: JSON for --json, aligned text for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from appliance.hardware.models import HardwareReport
from appliance.plan.planner import ModelPlan
from appliance.profiles.select import Selection


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _row(label: str, text: str) -> str:
    return f"{label:<9}{text}"


def render_hardware(report: HardwareReport) -> str:
    cpu, mem, disk = report.cpu, report.memory, report.disk
    lines = [
        _row("CPU", f"{cpu.model}: {cpu.physical_cores} physical / {cpu.logical_cores} logical cores, "
                    f"{cpu.architecture}, features {', '.join(cpu.features) or 'none of note'}"),
        _row("Memory", f"{mem.total_mib} MiB total, {mem.available_mib} MiB available"),
        _row("Disk", f"{disk.free_mib} MiB free of {disk.total_mib} MiB under {disk.path}"),
        _row("OS", f"{report.os.name}, kernel {report.os.kernel}"),
    ]
    nvml = report.nvml
    if nvml.available:
        lines.append(_row("NVML", f"driver {nvml.driver_version}, CUDA {nvml.cuda_driver_version}"
                                  + (f" ({nvml.reason})" if nvml.reason else "")))
    else:
        lines.append(_row("NVML", nvml.reason))
    if not report.gpus:
        lines.append(_row("GPUs", "none: CPU-only box"))
    for gpu in report.gpus:
        memory = "memory unknown" if gpu.memory_total_mib is None else f"{gpu.memory_total_mib} MiB"
        mig = f", MIG {gpu.mig_mode}" + (
            f" ({', '.join(f'{m.profile} {m.memory_total_mib} MiB' for m in gpu.mig_devices)})"
            if gpu.mig_devices else "")
        lines.append(_row(f"GPU {gpu.index}", f"{gpu.name}, {memory}, cc {gpu.compute_capability or '?'}"
                                              f"{mig}"))
    return "\n".join(lines)


def render_selection(selection: Selection, explain: bool) -> str:
    lines = [_row("Profile", f"{selection.name}: {selection.profile.description}"),
             _row("Why", selection.reason)]
    if explain:
        lines.append("")
        for verdict in sorted(selection.verdicts, key=lambda v: v.name):
            mark = "✓" if verdict.matched else "✗"
            chosen = " (chosen)" if verdict.name == selection.name else ""
            lines.append(f"  {mark} {verdict.name}{chosen} [specificity {verdict.specificity}]")
            lines.extend(f"      {reason}" for reason in verdict.reasons)
    else:
        rejected = [v for v in selection.verdicts if not v.matched and v.name != selection.name]
        for verdict in sorted(rejected, key=lambda v: v.name):
            lines.append(f"  ✗ {verdict.name}: {verdict.reasons[-1] if verdict.reasons else 'rejected'}")
    return "\n".join(lines)


def render_plan(plan: ModelPlan) -> str:
    lines = [
        f"Model    {plan.params / 1e9:.3f}B parameters (shape: {plan.shape.name}, {plan.shape.layers} layers, "
        f"hidden {plan.shape.hidden})",
        f"Profile  {plan.profile}: train {plan.training_method}, quantize {plan.quantization}, "
        f"serve with {plan.serving_backend}",
        f"Train    {'OK' if plan.can_train else 'NO'}: {plan.training.message}",
        f"Serve    {'OK' if plan.can_serve else 'NO'}: {plan.serving.message}",
    ]
    if len(plan.method_reasons) > 1:
        lines.extend(f"Ladder   {reason}" for reason in plan.method_reasons)
    lines.extend(f"Note     {note}" for note in plan.notes)
    return "\n".join(lines)
