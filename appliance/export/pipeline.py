"""Export of a LoRA adapter: merge → F16 GGUF → quantized variants, and the adapter as a GGUF LoRA; the parity
gate decides; only then is every artifact registered, each with its lineage and the parity report.

Lineage: adapter → <prefix>-merged (hf, "merged") → <prefix>-f16 ("export") → <prefix>-q8_0 ... ("export"),
and adapter → <prefix>-lora-gguf ("adapter-gguf"), served over <hf-base>-f16 ("export", child of the hf-base).
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.evaluation.golden import GoldenItem
from appliance.export import parity
from appliance.export.hf_quant import load_forced, quantize_awq
from appliance.export.layout import ExportError
from appliance.export.lora import write_lora_gguf
from appliance.export.merge import merge_adapter
from appliance.export.parity_report import Answer, ParityReport
from appliance.export.quantize import quantize
from appliance.export.writer import write_from_hf, write_from_template
from appliance.registry.registry import ModelRecord, Registry, RegistryError

Progress = Callable[..., None]
HF_VARIANTS = ("awq",)  # exported as HF folders for vLLM; the rest are GGUF types
BASE_F16_ROLE = "base-f16"


class ParityFailed(ExportError):
    def __init__(self, report: ParityReport) -> None:
        super().__init__(f"export failed the parity gate:\n{report.summary()}")
        self.report = report


@dataclass(frozen=True)
class ExportPlan:
    adapter: ModelRecord
    hf_base: ModelRecord
    template: ModelRecord | None  # the GGUF the hf-base was converted from: its metadata is kept
    variants: tuple[str, ...]
    prefix: str

    def names(self) -> dict[str, str]:
        return artifact_names(self.prefix, self.variants)


def artifact_names(prefix: str, variants: tuple[str, ...] | list[str]) -> dict[str, str]:
    names = {"merged": f"{prefix}-merged", "F16": f"{prefix}-f16", "lora": f"{prefix}-lora-gguf"}
    return {**names, **{v: f"{prefix}-{v.lower()}" for v in variants}}


def default_prefix(adapter_name: str) -> str:
    return adapter_name[:48]


def plan_export(registry: Registry, adapter_name: str, variants: list[str], prefix: str | None) -> ExportPlan:
    """Check the adapter and its lineage.

    Raises:
        RegistryError: no such model. ExportError: not a PEFT adapter, or no HF base in its lineage.
    """
    adapter = registry.get(adapter_name)
    if adapter.format != "peft":
        raise ExportError(f"{adapter.name!r} is a {adapter.format} model, not a LoRA adapter")
    if adapter.parent_id is None:
        raise ExportError(f"adapter {adapter.name!r} has no base model in its lineage")
    hf_base = registry.get(adapter.parent_id)
    if hf_base.format != "hf":
        raise ExportError(f"adapter {adapter.name!r} sits on {hf_base.name!r} ({hf_base.format}), not an HF model")
    template = registry.get(hf_base.parent_id) if hf_base.parent_id else None
    if template is not None and template.format != "gguf":
        template = None
    unique = tuple(dict.fromkeys(variants))
    return ExportPlan(adapter, hf_base, template, unique, prefix or default_prefix(adapter.name))


@dataclass
class ExportResult:
    artifacts: list[ModelRecord]
    lora_base: ModelRecord  # the F16 GGUF the GGUF LoRA was verified over
    report: ParityReport
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, progress: Progress, check_cancelled: Callable[[], None]) -> None:
        self.progress, self.check_cancelled = progress, check_cancelled
        self.timings: dict[str, float] = {}
        self._phase, self._started = "", time.monotonic()

    def phase(self, name: str, message: str = "") -> None:
        self.check_cancelled()
        self._close()
        self._phase, self._started = name, time.monotonic()
        self.progress(phase=name, message=message, force=True)

    def _close(self) -> None:
        if self._phase:
            self.timings[self._phase] = round(time.monotonic() - self._started, 2)

    def done(self) -> dict[str, float]:
        self._close()
        self._phase = ""
        return self.timings


def _write_gguf(plan: ExportPlan, folder: Path, out: Path, name: str, interleave_qk: bool = True) -> Path:
    if plan.template is not None:
        return write_from_template(plan.template.file, folder, out, name, interleave_qk=interleave_qk)
    return write_from_hf(folder, out, name, interleave_qk=interleave_qk)


def _base_f16(registry: Registry, plan: ExportPlan, work: Path) -> tuple[Path, ModelRecord | None]:
    """The hf-base as an F16 GGUF (what the GGUF LoRA is served over): registered once, reused after."""
    for child in registry.children(plan.hf_base.id, "export"):
        if child.metadata.get("role") == BASE_F16_ROLE:
            return child.file, child
    return _write_gguf(plan, Path(plan.hf_base.path), work / "base-f16.gguf", f"{plan.hf_base.name}-f16"), None


def _transformers_runs(plan: ExportPlan, merged_dir: Path, items: list[GoldenItem],
                       max_new_tokens: int) -> tuple[Any, list[parity.Run], list[parity.Run]]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(parity.gate_threads())
    tokenizer = AutoTokenizer.from_pretrained(plan.hf_base.path)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    reference = parity.transformers_runs(merged, tokenizer, items, max_new_tokens)
    del merged
    base = AutoModelForCausalLM.from_pretrained(plan.hf_base.path, dtype=torch.float32)
    peft = parity.transformers_runs(PeftModel.from_pretrained(base, plan.adapter.path), tokenizer, items,
                                    max_new_tokens)
    del base
    gc.collect()
    return tokenizer, reference, peft


def check_exports(tokenizer: Any, reference: list[parity.Run], peft: list[parity.Run], f16: Path,
                  base_f16: Path, lora: Path, quantized: dict[str, Path], max_new_tokens: int) -> ParityReport:
    """Every export against its transformers counterpart (see appliance.export.parity)."""
    exact = [parity.exact_check("PEFT vs merged (transformers)", tokenizer, reference, [r.tokens for r in peft],
                                gating=False)]
    with parity.llama_cpp_model(f16, reference) as model:
        exact.append(parity.greedy_check("F16 GGUF (llama.cpp) vs merged", tokenizer, reference, model))
        agreement = [parity.agreement_check("F16", tokenizer, reference, model)]
    with parity.llama_cpp_model(base_f16, peft, lora=lora) as model:
        exact.append(parity.greedy_check("GGUF LoRA over F16 base (llama.cpp) vs PEFT", tokenizer, peft, model))
    for variant, path in quantized.items():
        if variant in HF_VARIANTS:
            agreement.append(parity.agreement_check(variant, tokenizer, reference, load_forced(path)))
            continue
        with parity.llama_cpp_model(path, reference) as model:
            agreement.append(parity.agreement_check(variant, tokenizer, reference, model))
    answers = [Answer(prompt=m.prompt, merged=tokenizer.decode(m.tokens, skip_special_tokens=True).strip(),
                             peft=tokenizer.decode(p.tokens, skip_special_tokens=True).strip())
               for m, p in zip(reference, peft, strict=True)]
    return ParityReport(max_new_tokens=max_new_tokens, exact=exact, agreement=agreement, answers=answers)


def _register(registry: Registry, path: Path, name: str, kind: str, parent: ModelRecord, job_id: str,
              extra: dict[str, Any]) -> ModelRecord:
    try:
        existing = registry.get(name)
    except RegistryError:
        existing = None
    if existing is not None and existing.metadata.get("job_id") == job_id:
        return existing  # an earlier attempt of this job registered it before dying
    return registry.import_model(path, name, trusted=True, kind=kind, parent_id=parent.id,
                                 extra={**extra, "job_id": job_id})


def export_adapter(registry: Registry, plan: ExportPlan, items: list[GoldenItem], work: Path, job_id: str,
               progress: Progress, check_cancelled: Callable[[], None], max_new_tokens: int = 32) -> ExportResult:
    """Merge, write, quantize, gate, register.

    Raises:
        ParityFailed: an export does not reproduce its source (nothing is registered then).
        ExportError: a step was refused (unsupported architecture, tokenizer, llama-quantize failure...).
    """
    names, timer = plan.names(), _Timer(progress, check_cancelled)
    work.mkdir(parents=True, exist_ok=True)
    timer.phase("merging", f"{plan.adapter.name} into {plan.hf_base.name}")
    merged_dir = merge_adapter(Path(plan.hf_base.path), Path(plan.adapter.path), work / "merged")
    timer.phase("writing F16 GGUF", names["F16"])
    f16 = _write_gguf(plan, merged_dir, work / f"{names['F16']}.gguf", names["F16"])
    timer.phase("writing GGUF LoRA", names["lora"])
    lora = write_lora_gguf(Path(plan.adapter.path), Path(plan.hf_base.path), work / f"{names['lora']}.gguf",
                           names["lora"])
    base_f16, base_record = _base_f16(registry, plan, work)
    quantized: dict[str, Path] = {}
    for variant in plan.variants:
        timer.phase(f"quantizing {variant}", names[variant])
        if variant in HF_VARIANTS:  # an HF folder for vLLM, calibrated on the golden prompts
            quantized[variant] = quantize_awq(merged_dir, work / names[variant], [i.prompt for i in items])
        else:
            quantized[variant] = quantize(f16, work / f"{names[variant]}.gguf", variant)
    timer.phase("parity: transformers", f"{len(items)} golden prompts, PEFT and merged")
    tokenizer, reference, peft = _transformers_runs(plan, merged_dir, items, max_new_tokens)
    timer.phase("parity: llama.cpp", "F16, GGUF LoRA, " + ", ".join(plan.variants))
    report = check_exports(tokenizer, reference, peft, f16, base_f16, lora, quantized, max_new_tokens)
    (work / "parity.json").write_text(report.model_dump_json(indent=2))
    if not report.passed:
        raise ParityFailed(report)
    timer.phase("registering", ", ".join(names.values()))
    source = {"exported_from": {"adapter": plan.adapter.name, "id": plan.adapter.id, "sha256": plan.adapter.sha256},
              "metadata_from": plan.template.name if plan.template else plan.hf_base.name}
    gate = {"parity": report.model_dump(), "parity_figures": report.figures(), "parity_passed": True}
    merged = _register(registry, merged_dir, names["merged"], "merged", plan.adapter, job_id, source)
    f16_record = _register(registry, f16, names["F16"], "export", merged, job_id, {**source, **gate})
    artifacts = [merged, f16_record]
    for variant, path in quantized.items():
        parent = merged if variant in HF_VARIANTS else f16_record
        artifacts.append(_register(registry, path, names[variant], "export", parent, job_id,
                                   {**source, **gate, "quantized_from": parent.name}))
    if base_record is None:
        base_record = _register(registry, base_f16, f"{plan.hf_base.name[:55]}-f16", "export", plan.hf_base,
                                job_id, {"role": BASE_F16_ROLE})
    artifacts.append(_register(registry, lora, names["lora"], "adapter-gguf", plan.adapter, job_id,
                               {**source, **gate, "serve_over": base_record.name}))
    # Every artifact is a copy in the registry now (the parity report is in their metadata): the work folder,
    # several times the model's size, goes. A failed gate keeps it, parity.json included, to look at.
    shutil.rmtree(work, ignore_errors=True)
    timer.done()
    return ExportResult(artifacts=artifacts, lora_base=base_record, report=report, timings=timer.timings)
