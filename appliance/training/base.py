"""The Hugging Face folder a job trains on: the registry model itself, or the cached conversion of a GGUF base
(registered as a child of kind "hf-base", so a second job reuses it and lineage shows where it came from)."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.registry.registry import ModelRecord, Registry, RegistryError

HF_BASE_KIND = "hf-base"


def hf_base_name(base: ModelRecord) -> str:
    return f"{base.name[:58]}-hf"


def resolve_hf_base(registry: Registry, base: ModelRecord, work_dir: Path) -> ModelRecord:
    """The HF model to train from `base`; converts a GGUF base once (about 30-60 s for 135M parameters).

    Raises:
        RegistryError: the base is an adapter, or the conversion could not be registered.
    """
    if base.format == "hf":
        return base
    if base.format != "gguf":
        raise RegistryError(f"model {base.name!r} is a {base.format} adapter, not a base model to train on")
    cached = registry.children(base.id, HF_BASE_KIND)
    if cached:
        return cached[0]
    from appliance.training.convert import gguf_to_hf

    out = work_dir / "hf-base"
    gguf_to_hf(base.file, out)
    try:
        return registry.import_model(out, hf_base_name(base), trusted=True, kind=HF_BASE_KIND, parent_id=base.id,
                                     extra={"converted_from": base.name, "source_sha256": base.sha256})
    finally:
        shutil.rmtree(out, ignore_errors=True)
