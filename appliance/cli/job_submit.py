"""`slm-appliance jobs submit KIND ...`: the options come from the job kinds (`appliance.jobs.kinds`), one per
params field (`--base-model`, `--variant` (repeatable), `--set KEY=VALUE` for an object, ...); a field several
kinds share shares its option. `--param KEY=VALUE` sets any field by name. The daemon validates the values."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from appliance.client import ApiError
from appliance.jobs.kinds import KINDS, JobKind
from appliance.jobs.kinds.form import FormField, fields

EXAMPLE = ("example: slm-appliance jobs submit finetune --base-model smollm2-135m-instruct --dataset faq "
           "--golden /var/lib/slm-appliance/imports/golden.jsonl --set max_steps=50 --set learning_rate=5e-4")
_ARG_TYPES: dict[str, Any] = {"integer": int, "number": float}


def submit_kinds() -> list[JobKind[Any]]:
    return [kind for kind in KINDS if kind.submit_via_cli]


def _dest(flag: str) -> str:
    return "field_" + flag.lstrip("-").replace("-", "_")


def _shape(field: FormField) -> tuple[str, Any]:
    """How argparse takes the option: a flag, repeated values (a list, or KEY=VALUE pairs), or one value."""
    if field.type == "boolean":
        return "flag", None
    if field.type in ("list", "object"):
        return "append", None
    return "value", _ARG_TYPES.get(field.type)


def _usage(kind: JobKind[Any]) -> str:
    options = [f"{f.cli} {'KEY=VALUE' if f.type == 'object' else ''}".strip() + (" (required)" if f.required else "")
               for f in fields(kind.params)]
    return f"  {kind.name:<10} {kind.summary}\n  {'':<10} {', '.join(options)}"


def add_submit_options(submit: argparse.ArgumentParser) -> None:
    """The kind (positional) and one option per params field of the kinds `jobs submit` takes."""
    kinds = submit_kinds()
    submit.add_argument("type", choices=[kind.name for kind in kinds], metavar="KIND",
                        help="one of: " + ", ".join(kind.name for kind in kinds))
    uses: dict[str, list[tuple[str, FormField]]] = {}
    for kind in kinds:
        for field in fields(kind.params):
            uses.setdefault(field.cli, []).append((kind.name, field))
    for flag, shared in uses.items():
        shapes = {_shape(field) for _, field in shared}
        if len(shapes) > 1:
            raise ValueError(f"{flag}: the kinds {[k for k, _ in shared]} take it in different shapes")
        (shape, arg_type), field = shapes.pop(), shared[0][1]
        metavar = "KEY=VALUE" if field.type == "object" else flag.lstrip("-").replace("-", "_").upper()
        help_text = "; ".join(f"{kind}: {f.help or f.label}" + (f" (one of {', '.join(f.choices)})"
                                                               if f.choices else "") for kind, f in shared)
        if shape == "flag":
            submit.add_argument(flag, action="store_true", dest=_dest(flag), help=help_text)
        elif shape == "append":
            submit.add_argument(flag, action="append", dest=_dest(flag), help=help_text + " (repeatable)",
                                metavar=metavar)
        else:
            submit.add_argument(flag, type=arg_type, dest=_dest(flag), help=help_text, metavar=metavar)
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", dest="params",
                        help="any params field by name, the value as JSON or text (repeatable)")
    submit.epilog = "kinds and their options:\n" + "\n".join(_usage(kind) for kind in kinds) + "\n\n" + EXAMPLE
    submit.formatter_class = argparse.RawDescriptionHelpFormatter


def _value(text: str) -> Any:
    try:
        return json.loads(text)  # numbers, booleans, lists
    except ValueError:
        return text


def _pairs(items: list[str], flag: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ApiError("Invalid arguments", f"{flag} {item!r}: use KEY=VALUE")
        out[key.strip()] = _value(value.strip())
    return out


def submit_params(args: argparse.Namespace, kind: JobKind[Any]) -> dict[str, Any]:
    """The params of `kind` from the parsed options; raises ApiError naming the missing required options."""
    params = _pairs(args.params, "--param")
    for field in fields(kind.params):
        value = getattr(args, _dest(field.cli), None)
        if value is None or value is False:
            continue
        if field.type == "object":
            given = params.get(field.name)
            value = {**(given if isinstance(given, dict) else {}), **_pairs(value, field.cli)}
        elif field.path:
            value = os.path.abspath(value)
        params[field.name] = value
    missing = [f.cli for f in fields(kind.params) if f.required and params.get(f.name) is None]
    if missing:
        raise ApiError("Invalid arguments", f"{kind.name} needs {' and '.join(missing)}")
    return params
