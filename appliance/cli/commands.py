"""The offline commands: they read this box (hardware, profiles, the planner), no daemon and no state store."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.backends.base import BackendUnavailable
from appliance.backends.cpu_variants import STATIC_BUILD
from appliance.backends.llamacpp import LlamaCppBackend
from appliance.backends.registry import backend_rules, serving_memory
from appliance.cli.output import print_json, render_hardware, render_plan, render_selection
from appliance.config import ApplianceConfig
from appliance.errors import ApplianceError
from appliance.hardware.detect import detect_hardware
from appliance.plan.planner import make_plan
from appliance.plan.shapes import parse_params, shape_for
from appliance.profiles.loader import ProfileError, load_profiles
from appliance.profiles.select import Selection, SelectionError, select_profile


class CommandError(ApplianceError):
    """A command failed for a reason the operator can act on; printed without a traceback."""


def _select(config: ApplianceConfig, nvml: Any) -> tuple[Any, Selection]:
    hardware = detect_hardware(config.resolved_state_dir(), nvml)
    try:
        profiles = load_profiles(config.resolved_profiles_dir(), backend_rules())
        return hardware, select_profile(profiles, hardware, config.profile)
    except (ProfileError, SelectionError) as exc:
        raise CommandError(str(exc)) from exc


def _llama_cpu(config: ApplianceConfig) -> dict[str, Any]:
    """The llama.cpp build's CPU level on this box: a static build, or the variant checked to run here."""
    backend = LlamaCppBackend.from_config(config, config.resolved_state_dir())
    try:
        choice = backend.cpu_variant()
    except (BackendUnavailable, OSError) as exc:
        return {"variant": None, "summary": f"unknown: {exc}", "refused": {}}
    if choice is None:
        return {"variant": None, "summary": STATIC_BUILD, "refused": {}}
    return {"variant": choice.variant, "summary": choice.describe(), "refused": choice.refused}


def detect(args: argparse.Namespace, config: ApplianceConfig, nvml: Any) -> int:
    hardware, selection = _select(config, nvml)
    llama = _llama_cpu(config)
    if args.json:
        print_json({"hardware": hardware.model_dump(mode="json"), "profile": selection.name,
                    "reason": selection.reason, "verdicts": [v.model_dump() for v in selection.verdicts],
                    "llama_cpp_cpu": llama})
    else:
        print(render_hardware(hardware))
        print(f"llama.cpp CPU: {llama['summary']}")
        print(render_selection(selection, explain=False))
    return 0


def profile(args: argparse.Namespace, config: ApplianceConfig, nvml: Any) -> int:
    _, selection = _select(config, nvml)
    if args.json:
        print_json({"selected": selection.name, "pinned": selection.pinned, "reason": selection.reason,
                    "tensor_parallel_size": selection.tensor_parallel_size,
                    "verdicts": [v.model_dump() for v in selection.verdicts],
                    "profile": selection.profile.model_dump(mode="json")})
    else:
        print(render_selection(selection, explain=args.explain))
    return 0


def plan(args: argparse.Namespace, config: ApplianceConfig, nvml: Any) -> int:
    try:
        shape = shape_for(parse_params(args.params))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    hardware, selection = _select(config, nvml)
    result = make_plan(shape, selection, hardware, serving_memory(selection.profile.serving.backend))
    if args.json:
        print_json(result)
    else:
        print(render_plan(result))
    return 0
