"""The `eval` job: a registry model's golden-set answers (and held-out loss on a dataset's eval split), stored
in the model's metadata under "evaluations"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from appliance.datasets.errors import DatasetError
from appliance.datasets.store import DatasetStore
from appliance.evaluation.generate import greedy_answers
from appliance.evaluation.golden import GoldenError, golden_digest, make_report
from appliance.evaluation.load import load_for_eval
from appliance.jobs.events import Emitter, JobFailed
from appliance.jobs.handlers.finetune import golden_items
from appliance.jobs.kinds.evaluate import EvalParams
from appliance.registry.registry import Registry, RegistryError
from appliance.state.store import StateStore
from appliance.training.encode import pad_id
from appliance.training.heldout import encoded, evaluate, perplexity


def _heldout_loss(model: Any, tokenizer: Any, conversations: list[Any]) -> float | None:
    return evaluate(model, encoded(tokenizer, [list(c) for c in conversations], 2048), 4, pad_id(tokenizer))


def run_eval(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    params = EvalParams.model_validate(spec["params"])
    state_dir, job_dir = Path(spec["state_dir"]), Path(spec["job_dir"])
    roots = [Path(r) for r in spec["import_roots"]]
    store = StateStore(state_dir / "state.db").open()
    try:
        registry = Registry(store, state_dir / "models", roots)
        record = registry.get(params.model)
        items = golden_items(params.golden, roots)
        emitter.progress(phase="loading model", message=record.name, force=True)
        model, tokenizer = load_for_eval(registry, record, job_dir)
        emitter.check_cancelled()
        emitter.progress(phase="golden set", step=0, total=len(items), force=True)
        answers = greedy_answers(model, tokenizer, items, params.max_new_tokens,
                                 on_batch=lambda done, total: emitter.progress(phase="golden set", step=done,
                                                                               total=total, force=True))
        report = make_report(items, answers)
        loss = None
        if params.dataset:
            emitter.check_cancelled()
            emitter.progress(phase="held-out loss", message=params.dataset, force=True)
            datasets = DatasetStore(store, state_dir / "datasets", roots)
            loss = _heldout_loss(model, tokenizer, datasets.load_split(datasets.get_ref(params.dataset), "eval"))
        evaluation = {"at": time.time(), "job_id": spec["id"], "golden_digest": golden_digest(items),
                      "golden": report.model_dump(), "score": round(report.score, 4), "summary": report.summary(),
                      "dataset": params.dataset, "eval_loss": loss,
                      "perplexity": perplexity(loss)}
        registry.update_metadata(record.id, {"evaluations": [*record.metadata.get("evaluations", []), evaluation]})
    except (RegistryError, DatasetError, GoldenError, ValueError) as exc:
        raise JobFailed(str(exc)) from exc
    finally:
        store.close()
    emitter.progress(phase="done", step=len(items), total=len(items), message=report.summary(), force=True)
    return {"model": record.name, "score": evaluation["score"], "summary": report.summary(), "eval_loss": loss,
            "perplexity": evaluation["perplexity"], "failed": [i.prompt for i in report.items if not i.passed]}
