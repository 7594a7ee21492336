"""A registry model as a transformers model for evaluation: HF folders directly, GGUF bases through their
cached HF conversion, PEFT adapters on top of their parent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.registry.registry import ModelRecord, Registry
from appliance.training.base import resolve_hf_base


def load_for_eval(registry: Registry, model: ModelRecord, work_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) in fp32 on the CPU, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model.format == "peft":
        from peft import PeftModel

        if model.parent_id is None:
            raise ValueError(f"adapter {model.name!r} has no base model in its lineage")
        base = resolve_hf_base(registry, registry.get(model.parent_id), work_dir)
        loaded = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        adapted = PeftModel.from_pretrained(loaded, model.path)
        adapted.eval()  # type: ignore[no-untyped-call]
        return adapted, tokenizer
    base = resolve_hf_base(registry, model, work_dir)
    loaded = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    loaded.eval()  # type: ignore[no-untyped-call]
    return loaded, AutoTokenizer.from_pretrained(base.path)
