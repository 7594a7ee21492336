"""CLI commands that act through the running daemon's API (models, deployments), with the local admin key."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from appliance.backends.registry import backend_names
from appliance.cli.output import print_json
from appliance.client import ApiError, DaemonClient, DaemonUnreachable, resolve_key


def add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", help="API key (default: SLM_API_KEY or the local admin key file)")
    parser.add_argument("--key-file", type=Path, help="file holding the API key")


def add_client_options(parsers: Iterable[argparse.ArgumentParser]) -> None:
    for parser in parsers:
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_key_options(parser)


def connect(args: argparse.Namespace, base_url: str, state_dir: Path) -> DaemonClient:
    """A client with the key the flags, the environment or the state directory give (CredentialsError if none)."""
    return DaemonClient(base_url, resolve_key(args.key, args.key_file, state_dir))


def describe(exc: ApiError) -> str:
    """The line after `slm-appliance: ` for a failed call, as the CLI has always printed it."""
    if isinstance(exc, DaemonUnreachable):
        return f"cannot reach the daemon at {exc.message}"
    return f"{exc.status}: {exc.message}" if exc.status else exc.message


def add_remote_commands(sub: Any) -> None:
    models = sub.add_parser("models", help="model registry (through the daemon)")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = msub.add_parser("import", help="import a GGUF file or HF folder from an allowed import root")
    imp.add_argument("path")
    imp.add_argument("--name", required=True)
    for name, text in (("list", "list models"), ("show", "show a model with its lineage"),
                       ("delete", "delete a model not in use")):
        p = msub.add_parser(name, help=text)
        if name != "list":
            p.add_argument("name")
    deploy = sub.add_parser("deploy", help="deployments: serve models (through the daemon)")
    dsub = deploy.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = dsub.add_parser("create", help="deploy a registry model (defaults from the hardware profile)")
    create.add_argument("model")
    create.add_argument("--name", help="served model name (default: the model's name)")
    create.add_argument("--backend", choices=backend_names(), help="default: from the profile and the model's format")
    create.add_argument("--context-length", type=int)
    create.add_argument("--parallel-slots", type=int)
    create.add_argument("--threads", type=int)
    create.add_argument("--no-wait", action="store_true", help="return without waiting until it serves")
    dsub.add_parser("list", help="list deployments and their state")
    for name, text in (("stop", "stop a deployment (kept, restarts on start)"), ("start", "start it again"),
                       ("delete", "stop and remove a deployment"), ("show", "show one deployment")):
        dsub.add_parser(name, help=text).add_argument("name")
    logs = dsub.add_parser("logs", help="backend log of a deployment")
    logs.add_argument("name")
    logs.add_argument("--lines", type=int, default=100)
    _add_change_commands(dsub)
    add_client_options((*msub.choices.values(), *dsub.choices.values()))
    from appliance.cli.policy_cli import add_policy_commands  # it imports this module's option helpers

    add_policy_commands(dsub)
    from appliance.cli.trials_cli import add_trial_commands

    add_trial_commands(dsub)


def _add_change_commands(dsub: Any) -> None:
    switch = dsub.add_parser("switch", help="serve a new model version under NAME, blue/green, behind the eval "
                                            "gate (health, smoke prompt, golden set vs the live version)")
    switch.add_argument("name")
    switch.add_argument("model", help="registry model to serve")
    switch.add_argument("--golden", help="golden set JSONL under an import root (default: the fine-tune's, "
                                         "else the built-in general set)")
    switch.add_argument("--force", action="store_true", help="switch even if the eval gate finds a regression "
                                                             "(recorded in the audit log)")
    switch.add_argument("--shadow-gate-min-agreement", type=float, metavar="X", help="also require the shadow "
                        "serving MODEL to agree at least X (0 to 1) on average (default 0.8 with the other)")
    switch.add_argument("--shadow-gate-min-pairs", type=int, metavar="N", help="... over at least N shadow pairs "
                        "(default 100 with the other)")
    rollback = dsub.add_parser("rollback", help="return NAME to the version it served before, in one step")
    rollback.add_argument("name")
    rollback.add_argument("--to", help="a specific registry model instead of the previous version")
    for parser in (switch, rollback):
        parser.add_argument("--reason", help="why (kept in the history and the audit log)")
        parser.add_argument("--drain-timeout", type=float, default=60.0,
                            help="seconds the old backend may finish its requests (default 60)")
    history = dsub.add_parser("history", help="what NAME served, newest first")
    history.add_argument("name")
    adapters = dsub.add_parser("adapters", help="LoRA adapters served over NAME")
    adapters.add_argument("name")
    attach = dsub.add_parser("attach", help="serve an exported GGUF LoRA over NAME under its own model name")
    attach.add_argument("name")
    attach.add_argument("adapter", help="registry model of kind adapter-gguf")
    attach.add_argument("--as", dest="served", help="served model name (default: the adapter's name)")
    attach.add_argument("--scale", type=float, default=1.0)
    detach = dsub.add_parser("detach", help="stop serving an adapter")
    detach.add_argument("name")
    detach.add_argument("served", help="the adapter's served model name")


def print_switch(result: dict[str, Any]) -> None:
    gate = result.get("gate") or {}
    how = "blue/green" if result["blue_green"] else "restarted (nothing was serving)"
    print(f"{result['deployment']['name']}: {result['previous_model']} → {result['model']} ({result['action']}, "
          f"{how})")
    if gate:
        print(f"eval gate on {gate['golden']}: {gate['reason']}" + ("  [FORCED]" if result["forced"] else ""))
        print(f"  live      {gate['live']}\n  candidate {gate['candidate']}")
        if gate.get("forgotten"):
            print(f"  forgotten general prompts: {'; '.join(gate['forgotten'])}")
    if result.get("timings_s"):
        print("timings: " + ", ".join(f"{k} {v}s" for k, v in result["timings_s"].items()))
    if result["deployment"].get("adapters"):
        print("adapters: " + ", ".join(result["deployment"]["adapters"]))


def _change(args: argparse.Namespace, client: DaemonClient) -> Any:
    """switch / rollback / history / adapters / attach / detach; None when already printed."""
    if args.action == "history":
        entries = client.history(args.name)
        if args.json:
            return entries
        for e in entries:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
            extra = " FORCED" if e["detail"].get("forced") else ""
            print(f"{when}  {e['action']:<9} {e['model_name']:<32} by {e['actor']}{extra}"
                  + (f"  ({e['detail']['reason']})" if e["detail"].get("reason") else ""))
        return None
    if args.action == "adapters":
        return client.adapters(args.name)
    if args.action == "switch":
        result = client.switch(args.name, {"model": args.model, "golden": args.golden, "force": args.force,
                                           "reason": args.reason, "drain_timeout_s": args.drain_timeout},
                               min_agreement=args.shadow_gate_min_agreement, min_pairs=args.shadow_gate_min_pairs)
    elif args.action == "rollback":
        result = client.rollback(args.name, {"to": args.to, "reason": args.reason,
                                             "drain_timeout_s": args.drain_timeout})
    elif args.action == "attach":
        result = client.attach_adapter(args.name, {"adapter": args.adapter, "name": args.served,
                                                   "scale": args.scale})
    else:
        result = client.detach_adapter(args.name, args.served)
    if args.json:
        return result
    print_switch(result)
    return None


def _print_models(items: list[dict[str, Any]]) -> None:
    print(f"{'NAME':<28} {'FORMAT':<6} {'QUANT':<9} {'PARAMS':>9}  {'SIZE':>9}  SHA256")
    for m in items:
        params = f"{m['params'] / 1e6:.0f}M" if m.get("params") else "?"
        print(f"{m['name']:<28} {m['format']:<6} {m.get('quantization') or '':<9} {params:>9}  "
              f"{m['size_bytes'] / 2**20:>7.1f}Mi  {m['sha256'][:12]}")


def _print_deployments(items: list[dict[str, Any]]) -> None:
    print(f"{'NAME':<28} {'MODEL':<28} {'BACKEND':<9} {'STATE':<11} RESTARTS  MESSAGE")
    for d in items:
        print(f"{d['name']:<28} {d['model']:<28} {d['backend']:<9} {d['state']:<11} {d['restarts']:>8}  "
              f"{d['state_message']}")
        if d.get("backend_reason"):
            print(f"{'':<28} why {d['backend_reason']}")


def _wait_ready(client: DaemonClient, name: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    spinner = "|/-\\"
    tick = 0
    while time.monotonic() < deadline:
        deployment: dict[str, Any] = client.deployment(name)
        if deployment["state"] in ("ready", "failed"):
            sys.stderr.write("\r" + " " * 60 + "\r")
            return deployment
        sys.stderr.write(f"\r{spinner[tick % 4]} {name}: {deployment['state']} {deployment['state_message'][:40]}")
        sys.stderr.flush()
        tick += 1
        time.sleep(0.5)
    raise ApiError("Not ready",
                   f"{name} did not become ready in {timeout:.0f}s; see `slm-appliance deploy logs {name}`")


def _listed(args: argparse.Namespace, items: list[dict[str, Any]],
            table: Callable[[list[dict[str, Any]]], None]) -> Any:
    """With --json the items, for the caller to print; else the table, printed here (None)."""
    if args.json:
        return items
    table(items)
    return None


def _models(args: argparse.Namespace, client: DaemonClient) -> Any:
    if args.action == "import":
        return client.import_model(os.path.abspath(args.path), args.name)
    if args.action == "list":
        return _listed(args, client.models(), _print_models)
    if args.action == "show":
        return client.model(args.name)
    return client.delete_model(args.name)


def _deploy(args: argparse.Namespace, client: DaemonClient) -> Any:
    if args.action == "create":
        params = {k: v for k, v in (("context_length", args.context_length), ("parallel_slots", args.parallel_slots),
                                    ("threads", args.threads)) if v is not None}
        body = {"model": args.model, "name": args.name, "backend": args.backend, "params": params}
        created = client.create_deployment(body)
        return created if args.no_wait else _wait_ready(client, created["name"])
    if args.action == "list":
        return _listed(args, client.deployments(), _print_deployments)
    if args.action == "logs":
        print(client.deployment_logs(args.name, args.lines))
        return None
    if args.action == "show":
        return client.deployment(args.name)
    if args.action == "delete":
        return client.delete_deployment(args.name)
    if args.action in ("switch", "rollback", "history", "adapters", "attach", "detach"):
        return _change(args, client)
    if args.action in ("shadow", "canary"):
        from appliance.cli.trials_cli import run_trials

        run_trials(args, client)
        return None
    if args.action == "policy":
        from appliance.cli.policy_cli import run_policy

        run_policy(args, client)
        return None
    return client.deployment_action(args.name, args.action)


def run_remote(args: argparse.Namespace, client: DaemonClient) -> int:
    """`models ...` and `deploy ...`; ApiError for the caller to print."""
    result = _models(args, client) if args.command == "models" else _deploy(args, client)
    if result is None:
        return 0
    if args.json or not isinstance(result, dict):
        print_json(result)
    else:
        for key in ("name", "model", "backend", "backend_reason", "format", "quantization", "state", "state_message",
                    "sha256"):
            if key in result:
                print(f"{key:<14} {result[key]}")
        if "policy_version" in result:  # deploy show
            print(f"{'policy':<14} " + (f"v{result['policy_version']}" if result["policy_version"] else "none set"))
    return 1 if isinstance(result, dict) and result.get("state") == "failed" else 0
