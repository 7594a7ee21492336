"""The `export` job: a LoRA adapter → merged HF model, F16 GGUF, quantized GGUFs and a GGUF LoRA, each registered
with its lineage once the parity gate passed (appliance.export.pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.errors import is_disk_full
from appliance.evaluation.golden import GoldenError
from appliance.export.layout import ExportError
from appliance.export.pipeline import export_adapter, plan_export
from appliance.jobs.events import Emitter, JobFailed
from appliance.jobs.handlers.finetune import golden_items
from appliance.jobs.kinds.export import ExportParams
from appliance.registry.registry import Registry, RegistryError
from appliance.state.store import StateStore


def run_export(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    raw = dict(spec["params"])
    resolved = raw.pop("resolved", {})
    params = ExportParams.model_validate(raw)
    state_dir, job_dir = Path(spec["state_dir"]), Path(spec["job_dir"])
    roots = [Path(r) for r in spec["import_roots"]]
    store = StateStore(state_dir / "state.db").open()
    try:
        registry = Registry(store, state_dir / "models", roots)
        variants = list(params.variants or resolved.get("variants") or ["Q8_0"])
        plan = plan_export(registry, params.adapter, variants, params.name_prefix or resolved.get("name_prefix"))
        # The golden set asked for, else the one the adapter was fine-tuned with (as the deploy gate does).
        recorded = registry.inherited(plan.adapter.id, "golden_set")
        items = golden_items(params.golden or (str(recorded) if recorded else None), roots)
        result = export_adapter(registry, plan, items, job_dir / "export", spec["id"], emitter.progress,
                                emitter.check_cancelled, params.max_new_tokens)
    except (RegistryError, ExportError, GoldenError) as exc:
        raise JobFailed(str(exc)) from exc
    except Exception as exc:  # OSError, or a library's own error wrapping ENOSPC (safetensors)
        if not is_disk_full(exc):
            raise
        where = getattr(exc, "filename", None) or job_dir
        raise JobFailed(f"export stopped: no space left on device writing {where} (an export needs several "
                        f"times the model's size in {job_dir}); free space and submit it again") from exc
    finally:
        store.close()
    emitter.progress(phase="done", message=", ".join(a.name for a in result.artifacts), force=True)
    return {
        "adapter": plan.adapter.name,
        "artifacts": [{"name": a.name, "kind": a.kind, "format": a.format, "quantization": a.quantization,
                       "sha256": a.sha256, "size_bytes": a.size_bytes} for a in result.artifacts],
        "lora_base": result.lora_base.name,
        "parity": result.report.figures(),
        "parity_exact": {c.name: f"{c.matched_prompts}/{c.prompts}" for c in result.report.exact},
        "parity_summary": result.report.summary(),
        "timings_s": result.timings,
    }
