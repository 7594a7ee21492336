"""How Hugging Face weights map onto llama.cpp's: the GGUF architecture per HF model type, tensor names via
gguf's TensorNameMap, and the rotary row order llama.cpp expects for attention q/k."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from appliance.errors import ApplianceError


class ExportError(ApplianceError):
    """An export step was refused or failed; the message is for the operator."""


@dataclass(frozen=True)
class ArchLayout:
    arch: gguf.MODEL_ARCH
    # llama.cpp's llama graph applies rope to interleaved pairs, HF to two halves per head: q/k rows differ.
    interleave_qk: bool

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]


# Mistral (dense) runs on llama.cpp's llama graph; Qwen2 has its own, with the HF rotary layout.
ARCHES: dict[str, ArchLayout] = {
    "llama": ArchLayout(gguf.MODEL_ARCH.LLAMA, True),
    "mistral": ArchLayout(gguf.MODEL_ARCH.LLAMA, True),
    "qwen2": ArchLayout(gguf.MODEL_ARCH.QWEN2, False),
}


@dataclass(frozen=True)
class HFShape:
    """What the export needs from an HF config.json."""

    model_type: str
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    rope_theta: float
    rms_eps: float
    vocab_size: int
    tied_embeddings: bool

    @property
    def layout(self) -> ArchLayout:
        return ARCHES[self.model_type]


def read_hf_shape(folder: Path) -> HFShape:
    """The shape of an HF llama-family model.

    Raises:
        ExportError: unsupported architecture or rope scaling this writer does not express.
    """
    config: dict[str, Any] = json.loads((folder / "config.json").read_text())
    model_type = str(config.get("model_type"))
    if model_type not in ARCHES:
        raise ExportError(f"architecture {model_type!r} cannot be exported to GGUF yet; "
                          f"supported: {', '.join(sorted(ARCHES))}")
    # transformers 5 keeps rope settings in rope_parameters, 4.x in rope_theta / rope_scaling.
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise ExportError(f"rope scaling {rope.get('rope_type') or rope.get('type')!r} is not supported by the "
                          "GGUF writer yet")
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    return HFShape(
        model_type=model_type, layers=int(config["num_hidden_layers"]), hidden=hidden,
        ffn=int(config["intermediate_size"]), heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        context_length=int(config.get("max_position_embeddings") or 2048),
        rope_theta=float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0),
        rms_eps=float(config.get("rms_norm_eps") or 1e-6), vocab_size=int(config["vocab_size"]),
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def interleave_rotary(rows: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """HF's per-head [first half | second half] rotary rows → llama.cpp's pairs (row 2i = i, 2i+1 = i + d/2).

    Works on a weight (out × in), a bias (out,) or a LoRA B (out × r): only the row order changes.
    """
    out = rows.shape[0]
    if out % (2 * heads):
        raise ExportError(f"{out} rows do not split into {heads} heads of rotary pairs")
    grouped = rows.reshape(heads, 2, out // heads // 2, *rows.shape[1:])
    return np.ascontiguousarray(grouped.swapaxes(1, 2).reshape(rows.shape))


class NameMapper:
    """HF tensor name → GGUF tensor name (and which q/k head count applies) for one architecture."""

    def __init__(self, shape: HFShape) -> None:
        self.shape = shape
        self._map = gguf.get_tensor_name_map(shape.layout.arch, shape.layers)

    def gguf_name(self, hf_name: str) -> str | None:
        """None for tensors llama.cpp does not take (rotary caches, a tied lm_head)."""
        if hf_name.endswith("rotary_emb.inv_freq"):
            return None
        if hf_name == "lm_head.weight" and self.shape.tied_embeddings:
            return None
        name = self._map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError(f"no GGUF name for tensor {hf_name!r} ({self.shape.model_type})")
        return name

    def rotary_heads(self, gguf_name: str) -> int | None:
        """Head count to interleave this tensor's rows with, or None when it keeps HF's order."""
        if not self.shape.layout.interleave_qk:
            return None
        if ".attn_q." in gguf_name:
            return self.shape.heads
        if ".attn_k." in gguf_name:
            return self.shape.kv_heads
        return None
