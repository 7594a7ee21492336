"""What every training job does around the training core (`training.run`), whatever its method: the HF base
(a GGUF converted once), the dataset version's splits, golden answers before and after, the adapter registered
with its lineage. Resumable: checkpoints live in the job folder, so a rerun of the same job (after kill -9,
reboot, or cancel + resubmit of the same job) continues at the last committed step.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance import __version__
from appliance.datasets.errors import DatasetError
from appliance.datasets.store import DatasetRecord, DatasetStore
from appliance.evaluation.generate import greedy_answers
from appliance.evaluation.golden import (
    GoldenError,
    GoldenItem,
    GoldenReport,
    forgotten,
    golden_digest,
    golden_set,
    make_report,
)
from appliance.evaluation.load import load_for_eval
from appliance.jobs.events import Emitter, JobCancelled, JobFailed
from appliance.jobs.kinds.finetune import TrainingParams
from appliance.registry.registry import ModelRecord, Registry, RegistryError
from appliance.state.store import StateStore
from appliance.training.base import resolve_hf_base
from appliance.training.build import MethodUnavailable
from appliance.training.core import TrainResult
from appliance.training.request import TrainMethod, TrainRequest
from appliance.training.run import TrainingFailed, run_training
from appliance.training.settings import ResolvedTraining
from appliance.validation import first_problem


def golden_items(params_golden: str | None, roots: list[Path]) -> list[GoldenItem]:
    try:
        return golden_set(params_golden or None, roots)[0]
    except DatasetError as exc:
        raise JobFailed(f"golden set {exc}") from exc


def golden_report(registry: Registry, model: ModelRecord, items: list[GoldenItem], cache_dir: Path,
                  work_dir: Path, emitter: Emitter, loaded: Any = None) -> GoldenReport:
    """Golden answers of `model` (cached per model and golden set: a base is scored once)."""
    cache = cache_dir / f"{model.id}-{golden_digest(items)}.json"
    if loaded is None and cache.is_file():
        return GoldenReport.model_validate_json(cache.read_text())
    emitter.progress(phase="golden set", message=f"answering {len(items)} golden prompts with {model.name}",
                     force=True)
    model_obj, tokenizer = loaded if loaded is not None else load_for_eval(registry, model, work_dir)
    answers = greedy_answers(model_obj, tokenizer, items)
    report = make_report(items, answers)
    if loaded is None:  # a trained model's answers are stored with the adapter instead
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(report.model_dump_json())
    return report


def register_adapter(registry: Registry, adapter_dir: Path, name: str, parent: ModelRecord,
                     lineage: dict[str, Any], job_id: str) -> ModelRecord:
    try:
        existing = registry.get(name)
    except RegistryError:
        existing = None
    if existing is not None and existing.metadata.get("job_id") == job_id:
        return existing  # registered by an earlier attempt of this job that died before reporting
    return registry.import_model(adapter_dir, name, trusted=True, kind="adapter", parent_id=parent.id,
                                 extra={**lineage, "job_id": job_id})


def resolved_training(resolved: dict[str, Any]) -> ResolvedTraining:
    """The settings pre-flight resolved and stored with the job; the core trains with them as they are."""
    try:
        return ResolvedTraining.model_validate(resolved.get("training"))
    except ValidationError as exc:
        # Jobs queued before the settings were resolved into one model stored another shape.
        raise JobFailed(f"the job's stored training settings are not readable ({first_problem(exc, 'training')}); "
                        "submit the job again") from exc


@dataclass
class Prepared:
    """A training job's inputs, ready: the registry, the base and its HF copy, the dataset, the golden set and
    the base's golden answers."""

    store: StateStore
    registry: Registry
    base: ModelRecord
    hf_base: ModelRecord
    dataset: DatasetRecord
    items: list[GoldenItem]
    cache_dir: Path
    golden_before: GoldenReport


def prepare(spec: dict[str, Any], emitter: Emitter, params: TrainingParams) -> Prepared:
    """Open the store, convert the base once, find the dataset, answer the golden set with the base."""
    state_dir, job_dir = Path(spec["state_dir"]), Path(spec["job_dir"])
    roots = [Path(r) for r in spec["import_roots"]]
    store = StateStore(state_dir / "state.db").open()
    try:
        registry = Registry(store, state_dir / "models", roots)
        base = registry.get(params.base_model)
        emitter.progress(phase="preparing base", message=f"{base.name} ({base.format})", force=True)
        hf_base = resolve_hf_base(registry, base, job_dir)
        dataset = DatasetStore(store, state_dir / "datasets", roots).get_ref(params.dataset)
        items = golden_items(params.golden, roots)
        cache_dir = state_dir / "cache" / "golden"
        before = golden_report(registry, hf_base, items, cache_dir, job_dir, emitter)
    except (RegistryError, DatasetError, GoldenError) as exc:
        store.close()
        raise JobFailed(str(exc)) from exc
    except BaseException:
        store.close()
        raise
    return Prepared(store, registry, base, hf_base, dataset, items, cache_dir, before)


def request_for(spec: dict[str, Any], ready: Prepared, method: TrainMethod, **knobs: Any) -> TrainRequest:
    """The core's request: the stored settings as they are, the dataset's split files, the method's knobs."""
    training = resolved_training(spec["params"].get("resolved", {}))
    return TrainRequest(method=method, base_dir=ready.hf_base.path, job_dir=spec["job_dir"],
                        train_file=str(ready.dataset.split_file("train")),
                        eval_file=str(ready.dataset.split_file("eval")), settings=training, **knobs)


def train(request: TrainRequest, emitter: Emitter) -> TrainResult:
    """Run the core; a stop is the job's cancel, a known failure the job's failure."""
    emitter.check_cancelled()
    emitter.progress(phase="loading model", force=True, message=f"{request.settings.method} on {request.base_dir}"
                     + (f", {request.settings.processes} processes ({request.settings.layout})"
                        if request.settings.processes > 1 else ""))
    try:
        return run_training(request, emitter.progress, lambda: emitter.cancel_requested)
    except InterruptedError as exc:
        emitter.log(str(exc))
        raise JobCancelled() from exc
    except (MethodUnavailable, TrainingFailed, ValueError) as exc:
        raise JobFailed(str(exc)) from exc


def _trained(ready: Prepared, request: TrainRequest, result: TrainResult) -> tuple[Any, Any]:
    """The trained model for the golden set: in memory after an in-process run, else read back (a data-parallel
    run's ranks have exited)."""
    if result.model is not None:
        return result.model, result.tokenizer
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = request.adapter_dir
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    if not (adapter / "adapter_config.json").is_file():  # a full fine-tune saved the whole model
        return AutoModelForCausalLM.from_pretrained(str(adapter), dtype=torch.float32), tokenizer
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(ready.hf_base.path, dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter)), tokenizer  # greedy_answers puts it in eval mode


def golden_after(ready: Prepared, request: TrainRequest, result: TrainResult, emitter: Emitter,
                 job_dir: Path) -> dict[str, Any]:
    """The golden answers of the trained model beside the base's: both reports, scores, what was forgotten."""
    try:
        after = golden_report(ready.registry, ready.hf_base, ready.items, ready.cache_dir, job_dir, emitter,
                              loaded=_trained(ready, request, result))
    except GoldenError as exc:
        raise JobFailed(str(exc)) from exc
    before = ready.golden_before
    return {"before": before.model_dump(), "after": after.model_dump(), "forgotten": forgotten(before, after),
            "score_before": round(before.score, 4), "score_after": round(after.score, 4),
            "summary_before": before.summary(), "summary_after": after.summary()}


def lineage(ready: Prepared, training: ResolvedTraining, resolved: dict[str, Any], objective: TrainMethod,
            metrics: dict[str, Any], golden: dict[str, Any], golden_set: str | None) -> dict[str, Any]:
    return {
        "base_model": {"name": ready.base.name, "id": ready.base.id, "sha256": ready.base.sha256},
        "trained_on": {"name": ready.hf_base.name, "id": ready.hf_base.id},
        "dataset": {"name": ready.dataset.name, "version": ready.dataset.version, "id": ready.dataset.id,
                    "kind": ready.dataset.report.kind},
        "objective": objective, "method": training.method, "profile": resolved.get("profile"),
        "hyperparameters": training.model_dump(mode="json"),
        "metrics": metrics, "golden": {k: v for k, v in golden.items() if not k.startswith("summary")},
        "golden_set": golden_set, "code_version": __version__, "python": platform.python_version(),
    }


def register(spec: dict[str, Any], ready: Prepared, request: TrainRequest, name: str | None,
             lineage_: dict[str, Any], emitter: Emitter, steps: int) -> ModelRecord:
    """The adapter in the registry, a child of the HF base, with its lineage (also kept as lineage.json)."""
    job_dir = Path(spec["job_dir"])
    (job_dir / "lineage.json").write_text(json.dumps(lineage_, indent=2))
    name = name or f"{ready.dataset.name[:40]}-{spec['id'][:8]}"
    try:
        adapter = register_adapter(ready.registry, request.adapter_dir, name, ready.hf_base, lineage_, spec["id"])
    except RegistryError as exc:
        raise JobFailed(f"training finished but the adapter could not be registered: {exc}") from exc
    emitter.progress(phase="done", step=steps, total=steps, message=f"adapter {adapter.name}", force=True)
    return adapter
