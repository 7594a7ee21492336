"""The `finetune` job: base model (GGUF converted once) + an sft dataset version → a LoRA adapter in the registry,
with held-out loss and golden-set results before and after, and its whole lineage (`handlers.trainjob` does
what every training job does; the training core is `training.core`, TRL's `SFTTrainer`).

Resumable: the checkpoints live in the job folder, so a rerun of the same job (after kill -9, reboot or cancel
+ resubmit of the same job) continues at the last committed step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.jobs.events import Emitter
from appliance.jobs.handlers import trainjob
from appliance.jobs.handlers.trainjob import golden_items, resolved_training
from appliance.jobs.kinds.finetune import FinetuneParams
from appliance.training.core import TrainResult
from appliance.training.heldout import perplexity

__all__ = ["_resolved_training", "golden_items", "run_finetune"]
_resolved_training = resolved_training  # the name the settings tests know


def _metrics(result: TrainResult) -> dict[str, Any]:
    before, after = result.before.get("eval_loss"), result.after.get("eval_loss")
    return {
        "steps": result.steps, "resumed_from_step": result.resumed_from,
        "eval_loss_before": before, "eval_loss_after": after,
        "perplexity_before": perplexity(before), "perplexity_after": perplexity(after),
        "train_loss_last": result.train_loss_last, "seconds_per_step": round(result.seconds_per_step, 4),
        "tokens_per_s": round(result.tokens_per_s, 2), "losses": result.losses,
    }


def run_finetune(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    raw = dict(spec["params"])
    resolved = raw.pop("resolved", {})
    params = FinetuneParams.model_validate(raw)
    ready = trainjob.prepare(spec, emitter, params)
    try:
        request = trainjob.request_for(spec, ready, "sft")
        result = trainjob.train(request, emitter)
        golden = trainjob.golden_after(ready, request, result, emitter, Path(spec["job_dir"]))
        metrics = _metrics(result)
        lineage = trainjob.lineage(ready, request.settings, resolved, "sft", metrics, golden, params.golden)
        adapter = trainjob.register(spec, ready, request, params.adapter_name, lineage, emitter, result.steps)
    finally:
        ready.store.close()
    return {"adapter": adapter.name, "adapter_id": adapter.id, "base_model": ready.base.name,
            "dataset": f"{ready.dataset.name}@{ready.dataset.version}",
            **{k: v for k, v in metrics.items() if k != "losses"},
            "golden_before": golden["summary_before"], "golden_after": golden["summary_after"],
            "golden_score_before": golden["score_before"], "golden_score_after": golden["score_after"],
            "forgotten": golden["forgotten"]}
