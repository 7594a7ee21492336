"""A GGUF base becomes an HF folder once, for training and merging.

transformers loads a GGUF dequantized, but refuses to `save_pretrained` such a model ("quantized with gguf");
a fresh model built from the same config (without quantization_config) with the loaded weights saves fine.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def gguf_to_hf(gguf_path: Path, out_dir: Path) -> Path:
    """Write `out_dir` (config, safetensors, tokenizer with its chat template); atomic via a temp folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source_dir, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    fresh.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return out_dir
