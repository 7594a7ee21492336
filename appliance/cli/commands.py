"""The local commands: they read this box and the state store directly, no daemon needed."""

from __future__ import annotations

import argparse
import time
from typing import Any

from appliance.cli.output import print_json, render_hardware, render_plan, render_selection
from appliance.config import ApplianceConfig
from appliance.errors import ApplianceError
from appliance.hardware.detect import detect_hardware
from appliance.plan.planner import make_plan
from appliance.plan.shapes import parse_params, shape_for
from appliance.profiles.loader import ProfileError, load_profiles
from appliance.profiles.select import Selection, SelectionError, select_profile
from appliance.security.keys import ApiKeyError, create_key, list_keys, revoke_key
from appliance.security.usage import DAY_S, usage_summary
from appliance.state.store import StateStore, StoreError


class CommandError(ApplianceError):
    """A command failed for a reason the operator can act on; printed without a traceback."""


def _select(config: ApplianceConfig, nvml: Any) -> tuple[Any, Selection]:
    hardware = detect_hardware(config.resolved_state_dir(), nvml)
    try:
        profiles = load_profiles(config.resolved_profiles_dir())
        return hardware, select_profile(profiles, hardware, config.profile)
    except (ProfileError, SelectionError) as exc:
        raise CommandError(str(exc)) from exc


def detect(args: argparse.Namespace, config: ApplianceConfig, nvml: Any) -> int:
    hardware, selection = _select(config, nvml)
    if args.json:
        print_json({"hardware": hardware.model_dump(mode="json"), "profile": selection.name,
                    "reason": selection.reason, "verdicts": [v.model_dump() for v in selection.verdicts]})
    else:
        print(render_hardware(hardware))
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
    result = make_plan(shape, selection, hardware)
    if args.json:
        print_json(result)
    else:
        print(render_plan(result))
    return 0


def keys(args: argparse.Namespace, config: ApplianceConfig, nvml: Any) -> int:
    try:
        store = StateStore(config.resolved_state_dir() / "state.db").open()
    except (StoreError, OSError) as exc:
        raise CommandError(f"cannot open the state store: {exc}") from exc
    try:
        if args.keys_command == "create":
            created = create_key(store, args.name, args.scope, args.daily_token_quota)
            store.audit("cli", "key.create", args.name, {"scope": args.scope})
            if args.json:
                print_json(created)
            else:
                print(f"created {args.scope} key {args.name!r} (id {created.key.id}); the token is shown once:")
                print(created.token)
        elif args.keys_command == "list":
            items = list_keys(store)
            if args.json:
                print_json(items)
            for k in [] if args.json else items:
                state = "revoked" if k.revoked_at else "active"
                print(f"{k.name:<24} {k.id:<10} {k.scope:<10} {state}")
        elif args.keys_command == "usage":
            since = args.since if args.since is not None else float(int(time.time()) // DAY_S * DAY_S)
            rows = usage_summary(store, since)
            if args.json:
                print_json(rows)
            for r in [] if args.json else rows:
                print(f"{r['key']:<24} {r['model']:<32} {r['requests']:>8} requests {r['total_tokens']:>10} tokens")
        else:
            revoked = revoke_key(store, args.name)
            store.audit("cli", "key.revoke", revoked.name)
            print_json(revoked) if args.json else print(f"revoked key {revoked.name!r}")
    except ApiKeyError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        store.close()
    return 0
