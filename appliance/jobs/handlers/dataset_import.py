"""Dataset import as a job: loading the model's tokenizer (transformers) belongs in a worker, not the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.datasets.errors import DatasetError
from appliance.datasets.store import DatasetStore
from appliance.jobs.events import Emitter, JobFailed
from appliance.registry.registry import Registry, RegistryError
from appliance.state.store import StateStore


def _tokenizer(registry: Registry, name: str) -> Any:
    from transformers import AutoTokenizer

    model = registry.get(name)
    path = Path(model.path)
    if model.format == "gguf":
        # transformers rebuilds the tokenizer (and chat template) from the GGUF metadata, offline.
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path))


def run_dataset_import(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    params = spec["params"]
    state_dir = Path(spec["state_dir"])
    store = StateStore(state_dir / "state.db").open()
    roots = [Path(r) for r in spec["import_roots"]]
    tokenizer = None
    try:
        if params.get("base_model"):
            emitter.progress(phase="loading tokenizer", message=f"chat template of {params['base_model']}",
                             force=True)
            tokenizer = _tokenizer(Registry(store, state_dir / "models", roots), params["base_model"])
        emitter.check_cancelled()
        emitter.progress(phase="validating", message=params["path"], force=True)
        record = DatasetStore(store, state_dir / "datasets", roots).import_dataset(
            Path(params["path"]), params["name"], tokenizer=tokenizer,
            max_seq_length=params.get("max_seq_length") or spec["profile_max_seq_length"],
            eval_fraction=float(params.get("eval_fraction", 0.1)), seed=int(params.get("seed", 0)),
            strict=bool(params.get("strict", False)), kind=str(params.get("kind") or "sft"),
        )
    except (DatasetError, RegistryError) as exc:
        raise JobFailed(str(exc)) from exc
    finally:
        store.close()
    emitter.progress(phase="done", step=1, total=1, message=f"{record.name} v{record.version}", force=True)
    return {"dataset": record.name, "version": record.version, "id": record.id, "kind": record.report.kind,
            "train": record.train_count, "eval": record.eval_count, "invalid": record.records_invalid,
            "duplicates_removed": record.duplicates_removed}
