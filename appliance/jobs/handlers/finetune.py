"""The `finetune` job: base model (GGUF converted once) + dataset version → a LoRA adapter in the registry,
with held-out loss and golden-set results before and after, and its whole lineage.

Resumable: the checkpoint lives in the job folder, so a rerun of the same job (after kill -9, reboot or cancel
+ resubmit of the same job) continues at the last saved step.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance import __version__
from appliance.datasets.errors import DatasetError
from appliance.datasets.store import DatasetStore
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
from appliance.jobs.kinds.finetune import FinetuneParams
from appliance.registry.registry import ModelRecord, Registry, RegistryError
from appliance.state.store import StateStore
from appliance.training.base import resolve_hf_base
from appliance.training.build import MethodUnavailable
from appliance.training.loop import TrainResult, perplexity, train
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


def _metrics(result: TrainResult) -> dict[str, Any]:
    return {
        "steps": result.steps, "resumed_from_step": result.resumed_from,
        "eval_loss_before": result.eval_loss_before, "eval_loss_after": result.eval_loss_after,
        "perplexity_before": perplexity(result.eval_loss_before),
        "perplexity_after": perplexity(result.eval_loss_after),
        "train_loss_last": result.train_loss_last, "seconds_per_step": round(result.seconds_per_step, 4),
        "tokens_per_s": round(result.tokens_per_s, 2), "losses": result.losses,
    }


def _register(registry: Registry, adapter_dir: Path, name: str, parent: ModelRecord, lineage: dict[str, Any],
              job_id: str) -> ModelRecord:
    try:
        existing = registry.get(name)
    except RegistryError:
        existing = None
    if existing is not None and existing.metadata.get("job_id") == job_id:
        return existing  # registered by an earlier attempt of this job that died before reporting
    return registry.import_model(adapter_dir, name, trusted=True, kind="adapter", parent_id=parent.id,
                                 extra={**lineage, "job_id": job_id})


def _resolved_training(resolved: dict[str, Any]) -> ResolvedTraining:
    """The settings pre-flight resolved and stored with the job; the loop trains with them as they are."""
    try:
        return ResolvedTraining.model_validate(resolved.get("training"))
    except ValidationError as exc:
        # Jobs queued before the settings were resolved into one model stored another shape.
        raise JobFailed(f"the job's stored training settings are not readable ({first_problem(exc, 'training')}); "
                        "submit the job again") from exc


def run_finetune(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    raw = dict(spec["params"])
    resolved = raw.pop("resolved", {})
    params = FinetuneParams.model_validate(raw)
    training = _resolved_training(resolved)
    state_dir, job_dir = Path(spec["state_dir"]), Path(spec["job_dir"])
    roots = [Path(r) for r in spec["import_roots"]]
    store = StateStore(state_dir / "state.db").open()
    registry = Registry(store, state_dir / "models", roots)
    try:
        base = registry.get(params.base_model)
        emitter.progress(phase="preparing base", message=f"{base.name} ({base.format})", force=True)
        hf_base = resolve_hf_base(registry, base, job_dir)
        datasets = DatasetStore(store, state_dir / "datasets", roots)
        dataset = datasets.get_ref(params.dataset)
        train_convs, eval_convs = datasets.load_split(dataset, "train"), datasets.load_split(dataset, "eval")
        items = golden_items(params.golden, roots)
        cache_dir = state_dir / "cache" / "golden"
        before = golden_report(registry, hf_base, items, cache_dir, job_dir, emitter)
        emitter.check_cancelled()
        emitter.progress(phase="loading model", message=f"{training.method} on {hf_base.name}", force=True)
        result = train(Path(hf_base.path), job_dir / "adapter", job_dir / "checkpoint.pt",
                       [list(c) for c in train_convs], [list(c) for c in eval_convs], training,
                       progress=emitter.progress, should_stop=lambda: emitter.cancel_requested)
        after = golden_report(registry, hf_base, items, cache_dir, job_dir, emitter,
                              loaded=(result.model, result.tokenizer))
    except InterruptedError as exc:
        emitter.log(str(exc))
        raise JobCancelled() from exc
    except (RegistryError, DatasetError, GoldenError, MethodUnavailable, ValueError) as exc:
        raise JobFailed(str(exc)) from exc
    metrics = _metrics(result)
    golden = {"before": before.model_dump(), "after": after.model_dump(), "forgotten": forgotten(before, after),
              "score_before": round(before.score, 4), "score_after": round(after.score, 4)}
    lineage = {
        "base_model": {"name": base.name, "id": base.id, "sha256": base.sha256},
        "trained_on": {"name": hf_base.name, "id": hf_base.id},
        "dataset": {"name": dataset.name, "version": dataset.version, "id": dataset.id},
        "method": training.method, "profile": resolved.get("profile"),
        "hyperparameters": training.model_dump(mode="json"),
        "metrics": metrics, "golden": golden, "golden_set": params.golden,
        "code_version": __version__, "python": platform.python_version(),
    }
    (job_dir / "lineage.json").write_text(json.dumps(lineage, indent=2))
    name = params.adapter_name or f"{dataset.name[:40]}-{spec['id'][:8]}"
    try:
        adapter = _register(registry, job_dir / "adapter", name, hf_base, lineage, spec["id"])
    except RegistryError as exc:
        raise JobFailed(f"training finished but the adapter could not be registered: {exc}") from exc
    finally:
        store.close()
    emitter.progress(phase="done", step=result.steps, total=result.steps, message=f"adapter {adapter.name}",
                     force=True)
    return {"adapter": adapter.name, "adapter_id": adapter.id, "base_model": base.name,
            "dataset": f"{dataset.name}@{dataset.version}",
            **{k: v for k, v in metrics.items() if k != "losses"},
            "golden_before": before.summary(), "golden_after": after.summary(),
            "golden_score_before": golden["score_before"], "golden_score_after": golden["score_after"],
            "forgotten": golden["forgotten"]}
