"""A PEFT LoRA adapter as a GGUF LoRA adapter, so llama.cpp serves it over the base without merging.

llama.cpp's adapter loader wants general.type "adapter", adapter.type "lora", adapter.lora.alpha, and per
adapted weight `<base tensor>.lora_a` (r × in) / `.lora_b` (out × r); it scales by alpha / r like PEFT.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from appliance.export.layout import ExportError, NameMapper, interleave_rotary, read_hf_shape
from appliance.export.writer import hf_tensors

_PREFIX = "base_model.model."


def _pairs(adapter_dir: Path) -> dict[str, dict[str, np.ndarray[Any, Any]]]:
    """{HF weight name: {"A": ..., "B": ...}} from PEFT's safetensors keys."""
    pairs: dict[str, dict[str, np.ndarray[Any, Any]]] = {}
    for key, array in hf_tensors(adapter_dir).items():
        stem, _, kind = key.removeprefix(_PREFIX).rpartition(".lora_")
        if kind not in ("A.weight", "B.weight"):
            raise ExportError(f"adapter tensor {key!r} is not a LoRA A/B matrix (modules_to_save, DoRA or "
                              "embedding adapters cannot be exported as a GGUF LoRA)")
        pairs.setdefault(stem + ".weight", {})[kind[0]] = array
    return pairs


def write_lora_gguf(adapter_dir: Path, base_dir: Path, out: Path, name: str) -> Path:
    """Write `adapter_dir` (PEFT LoRA) as a GGUF LoRA adapter for the GGUF export of `base_dir`.

    Raises:
        ExportError: not a plain LoRA, or an architecture the exporter does not know.
    """
    config: dict[str, Any] = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora"):
        raise ExportError("only plain LoRA adapters (no DoRA) can be exported as GGUF adapters")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ExportError("per-module rank/alpha patterns cannot be expressed in one GGUF adapter.lora.alpha")
    # llama.cpp scales by alpha / r; rsLoRA scales by alpha / sqrt(r), so store the alpha that gives that.
    stored_alpha = alpha * math.sqrt(rank) if config.get("use_rslora") else alpha
    shape = read_hf_shape(base_dir)
    mapper = NameMapper(shape)
    writer = gguf.GGUFWriter(out.with_name(out.name + ".tmp"), shape.layout.arch_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, stored_alpha)
    for hf_name, pair in sorted(_pairs(adapter_dir).items()):
        base_name = mapper.gguf_name(hf_name)
        if base_name is None or set(pair) != {"A", "B"}:
            raise ExportError(f"adapter weight {hf_name!r} has no base tensor or lacks its A/B pair")
        heads = mapper.rotary_heads(base_name)
        lora_b = interleave_rotary(pair["B"], heads) if heads else pair["B"]
        writer.add_tensor(f"{base_name}.lora_a", pair["A"].astype(np.float32))
        writer.add_tensor(f"{base_name}.lora_b", lora_b.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out.with_name(out.name + ".tmp").rename(out)
    return out
