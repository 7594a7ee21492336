"""Model architecture shapes the planner needs (layers, widths, heads, vocab), and parsing of sizes like 7B."""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, Field


class ModelShape(BaseModel):
    """Enough of a decoder-only transformer's config to size LoRA, activations and the KV cache."""

    name: str
    params: float = Field(..., gt=0)
    layers: int = Field(..., gt=0)
    hidden: int = Field(..., gt=0)
    intermediate: int = Field(..., gt=0)
    heads: int = Field(..., gt=0)
    kv_heads: int = Field(..., gt=0)
    vocab: int = Field(..., gt=0)

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    def with_params(self, params: float) -> ModelShape:
        return self.model_copy(update={"params": params})


# Published configs of common small models (config.json of each), nearest one stands in for an unknown model.
REFERENCE_SHAPES: tuple[ModelShape, ...] = (
    ModelShape(name="SmolLM2-135M", params=134.5e6, layers=30, hidden=576, intermediate=1536,
               heads=9, kv_heads=3, vocab=49152),
    ModelShape(name="SmolLM2-360M", params=361.8e6, layers=32, hidden=960, intermediate=2560,
               heads=15, kv_heads=5, vocab=49152),
    ModelShape(name="Qwen2.5-0.5B", params=494e6, layers=24, hidden=896, intermediate=4864,
               heads=14, kv_heads=2, vocab=151936),
    ModelShape(name="Llama-3.2-1B", params=1.24e9, layers=16, hidden=2048, intermediate=8192,
               heads=32, kv_heads=8, vocab=128256),
    ModelShape(name="SmolLM2-1.7B", params=1.71e9, layers=24, hidden=2048, intermediate=8192,
               heads=32, kv_heads=32, vocab=49152),
    ModelShape(name="Llama-3.2-3B", params=3.21e9, layers=28, hidden=3072, intermediate=8192,
               heads=24, kv_heads=8, vocab=128256),
    ModelShape(name="Mistral-7B", params=7.24e9, layers=32, hidden=4096, intermediate=14336,
               heads=32, kv_heads=8, vocab=32768),
    ModelShape(name="Llama-3.1-8B", params=8.03e9, layers=32, hidden=4096, intermediate=14336,
               heads=32, kv_heads=8, vocab=128256),
    ModelShape(name="Qwen2.5-14B", params=14.7e9, layers=48, hidden=5120, intermediate=13824,
               heads=40, kv_heads=8, vocab=152064),
    ModelShape(name="Qwen2.5-32B", params=32.8e9, layers=64, hidden=5120, intermediate=27648,
               heads=40, kv_heads=8, vocab=152064),
    ModelShape(name="Llama-3.1-70B", params=70.6e9, layers=80, hidden=8192, intermediate=28672,
               heads=64, kv_heads=8, vocab=128256),
)

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBtT]?)\s*$")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_params(text: str | float | int) -> float:
    """'135M' -> 1.35e8, '7B' -> 7e9, '1.5b' -> 1.5e9, 8e9 -> 8e9.

    Raises:
        ValueError: not a positive size.
    """
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _SIZE.match(text)
        if not match:
            raise ValueError(f"cannot read a parameter count from {text!r} (try 135M, 1.5B or 7000000000)")
        value = float(match.group(1)) * _SCALE[match.group(2).lower()]
    if value <= 0 or math.isnan(value):
        raise ValueError("parameter count must be positive")
    return value


def shape_for(params: float) -> ModelShape:
    """The reference shape nearest in size (log scale), carrying the requested parameter count."""
    nearest = min(REFERENCE_SHAPES, key=lambda s: abs(math.log(s.params / params)))
    return nearest.with_params(params)
