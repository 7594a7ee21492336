"""Planning: model shapes, the memory planner, and the plan that combines them for one model and profile."""

from appliance.plan.memory import MemoryEstimate, lora_parameters, plan_training
from appliance.plan.planner import ModelPlan, make_plan
from appliance.plan.shapes import ModelShape, parse_params, shape_for

__all__ = [
    "MemoryEstimate",
    "ModelPlan",
    "ModelShape",
    "lora_parameters",
    "make_plan",
    "parse_params",
    "plan_training",
    "shape_for",
]
