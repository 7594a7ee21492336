"""The preference jobs (`dpo`, `kto`, `orpo`): base model + a preference or kto dataset version → a LoRA adapter
in the registry, with the held-out log-prob margin before and after (DPO and ORPO: chosen − rejected on the eval
split's pairs; KTO: desirable − undesirable answers), golden answers before and after, and the lineage
(`handlers.trainjob`; the trainers are TRL's, `training.trainers`). Resumable like a fine-tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from appliance.jobs.events import Emitter
from appliance.jobs.handlers import trainjob
from appliance.jobs.kinds.dpo import DpoParams
from appliance.jobs.kinds.kto import KtoParams
from appliance.jobs.kinds.orpo import OrpoParams
from appliance.training.core import TrainResult
from appliance.training.request import TrainMethod


def _metrics(result: TrainResult) -> dict[str, Any]:
    return {"steps": result.steps, "resumed_from_step": result.resumed_from,
            "margin_before": result.before.get("margin"), "margin_after": result.after.get("margin"),
            "heldout_before": result.before, "heldout_after": result.after,
            "train_loss_last": result.train_loss_last, "seconds_per_step": round(result.seconds_per_step, 4),
            "tokens_per_s": round(result.tokens_per_s, 2), "losses": result.losses}


def _run(spec: dict[str, Any], emitter: Emitter, method: TrainMethod, model: type[BaseModel]) -> dict[str, Any]:
    raw = dict(spec["params"])
    resolved = raw.pop("resolved", {})
    params: Any = model.model_validate(raw)
    knobs: dict[str, Any] = {"beta": params.beta}
    if method != "orpo":
        knobs["precompute_ref_log_probs"] = bool(resolved.get("precompute_ref_log_probs", False))
    ready = trainjob.prepare(spec, emitter, params)
    try:
        request = trainjob.request_for(spec, ready, method, **knobs)
        result = trainjob.train(request, emitter)
        golden = trainjob.golden_after(ready, request, result, emitter, Path(spec["job_dir"]))
        metrics = _metrics(result)
        lineage = {**trainjob.lineage(ready, request.settings, resolved, method, metrics, golden, params.golden),
                   "objective_settings": knobs}
        adapter = trainjob.register(spec, ready, request, params.adapter_name, lineage, emitter, result.steps)
    finally:
        ready.store.close()
    return {"adapter": adapter.name, "adapter_id": adapter.id, "base_model": ready.base.name,
            "dataset": f"{ready.dataset.name}@{ready.dataset.version}", "objective": method, **knobs,
            **{k: v for k, v in metrics.items() if k != "losses"},
            "golden_before": golden["summary_before"], "golden_after": golden["summary_after"],
            "golden_score_before": golden["score_before"], "golden_score_after": golden["score_after"],
            "forgotten": golden["forgotten"]}


def run_dpo(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    return _run(spec, emitter, "dpo", DpoParams)


def run_kto(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    return _run(spec, emitter, "kto", KtoParams)


def run_orpo(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    return _run(spec, emitter, "orpo", OrpoParams)
