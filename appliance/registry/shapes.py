"""A registry model's shape for the planner: its own figures when its metadata has them, else the nearest
reference shape of its size."""

from __future__ import annotations

from appliance.plan.shapes import ModelShape, shape_for
from appliance.registry.registry import ModelRecord


def shape_of(model: ModelRecord) -> ModelShape:
    meta, params = model.metadata, float(model.params or 1e8)
    base = shape_for(params)
    try:
        return ModelShape(name=model.name, params=params, layers=meta["layers"], hidden=meta["hidden"],
                          intermediate=meta.get("intermediate") or base.intermediate, heads=meta["heads"],
                          kv_heads=meta.get("kv_heads") or meta["heads"], vocab=meta.get("vocab") or base.vocab)
    except (KeyError, TypeError, ValueError):
        return base
