"""CLI commands that act through the running daemon's API (models, deployments), with the local admin key."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx

from appliance.cli.output import print_json
from appliance.config import ApplianceConfig


class RemoteError(Exception):
    """The daemon refused or could not be reached; the message is for the operator."""


class DaemonClient:
    def __init__(self, config: ApplianceConfig, key: str | None = None) -> None:
        self.base_url = config.base_url()
        key_file = config.resolved_state_dir() / "admin.key"
        token = key or os.environ.get("SLM_API_KEY")
        if token is None:
            try:
                token = key_file.read_text().strip()
            except OSError as exc:
                raise RemoteError(f"no API key: set SLM_API_KEY or pass --key (cannot read {key_file}: "
                                  f"{exc.strerror})") from exc
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the daemon at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise RemoteError(f"{response.status_code}: {message}")
        return response


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
    create.add_argument("--backend", choices=["llamacpp", "vllm"])
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
    for parser in (*msub.choices.values(), *dsub.choices.values()):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--key", help="API key (default: SLM_API_KEY or the local admin key file)")


def _add_change_commands(dsub: Any) -> None:
    switch = dsub.add_parser("switch", help="serve a new model version under NAME, blue/green, behind the eval "
                                            "gate (health, smoke prompt, golden set vs the live version)")
    switch.add_argument("name")
    switch.add_argument("model", help="registry model to serve")
    switch.add_argument("--golden", help="golden set JSONL under an import root (default: the fine-tune's, "
                                         "else the built-in general set)")
    switch.add_argument("--force", action="store_true", help="switch even if the eval gate finds a regression "
                                                             "(recorded in the audit log)")
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


def _print_switch(result: dict[str, Any]) -> None:
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
    base = f"/api/v1/deployments/{args.name}"
    if args.action == "history":
        entries = client.call("GET", f"{base}/history").json()
        if args.json:
            return entries
        for e in entries:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
            extra = " FORCED" if e["detail"].get("forced") else ""
            print(f"{when}  {e['action']:<9} {e['model_name']:<32} by {e['actor']}{extra}"
                  + (f"  ({e['detail']['reason']})" if e["detail"].get("reason") else ""))
        return None
    if args.action == "adapters":
        return client.call("GET", f"{base}/adapters").json()
    if args.action == "switch":
        body = {"model": args.model, "golden": args.golden, "force": args.force, "reason": args.reason,
                "drain_timeout_s": args.drain_timeout}
        result = client.call("POST", f"{base}/switch", json=body, timeout=900).json()
    elif args.action == "rollback":
        body = {"to": args.to, "reason": args.reason, "drain_timeout_s": args.drain_timeout}
        result = client.call("POST", f"{base}/rollback", json=body, timeout=900).json()
    elif args.action == "attach":
        body = {"adapter": args.adapter, "name": args.served, "scale": args.scale}
        result = client.call("POST", f"{base}/adapters", json=body, timeout=900).json()
    else:
        result = client.call("DELETE", f"{base}/adapters/{args.served}", timeout=900).json()
    if args.json:
        return result
    _print_switch(result)
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


def _wait_ready(client: DaemonClient, name: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    spinner = "|/-\\"
    tick = 0
    while time.monotonic() < deadline:
        deployment: dict[str, Any] = client.call("GET", f"/api/v1/deployments/{name}").json()
        if deployment["state"] in ("ready", "failed"):
            sys.stderr.write("\r" + " " * 60 + "\r")
            return deployment
        sys.stderr.write(f"\r{spinner[tick % 4]} {name}: {deployment['state']} {deployment['state_message'][:40]}")
        sys.stderr.flush()
        tick += 1
        time.sleep(0.5)
    raise RemoteError(f"{name} did not become ready in {timeout:.0f}s; see `slm-appliance deploy logs {name}`")


def _models(args: argparse.Namespace, client: DaemonClient) -> Any:
    if args.action == "import":
        body = {"path": os.path.abspath(args.path), "name": args.name}
        return client.call("POST", "/api/v1/models", json=body).json()
    if args.action == "list":
        items = client.call("GET", "/api/v1/models").json()
        if args.json:
            return items
        _print_models(items)
        return None
    if args.action == "show":
        return client.call("GET", f"/api/v1/models/{args.name}").json()
    return client.call("DELETE", f"/api/v1/models/{args.name}").json()


def _deploy(args: argparse.Namespace, client: DaemonClient) -> Any:
    if args.action == "create":
        params = {k: v for k, v in (("context_length", args.context_length), ("parallel_slots", args.parallel_slots),
                                    ("threads", args.threads)) if v is not None}
        body = {"model": args.model, "name": args.name, "backend": args.backend, "params": params}
        created = client.call("POST", "/api/v1/deployments", json=body).json()
        return created if args.no_wait else _wait_ready(client, created["name"])
    if args.action == "list":
        items = client.call("GET", "/api/v1/deployments").json()
        if args.json:
            return items
        _print_deployments(items)
        return None
    if args.action == "logs":
        print(client.call("GET", f"/api/v1/deployments/{args.name}/logs", params={"lines": args.lines}).text)
        return None
    if args.action == "show":
        return client.call("GET", f"/api/v1/deployments/{args.name}").json()
    if args.action == "delete":
        return client.call("DELETE", f"/api/v1/deployments/{args.name}").json()
    if args.action in ("switch", "rollback", "history", "adapters", "attach", "detach"):
        return _change(args, client)
    return client.call("POST", f"/api/v1/deployments/{args.name}/{args.action}").json()


def run_remote(args: argparse.Namespace, config: ApplianceConfig) -> int:
    client = DaemonClient(config, args.key)
    result = _models(args, client) if args.command == "models" else _deploy(args, client)
    if result is None:
        return 0
    if args.json or not isinstance(result, dict):
        print_json(result)
    else:
        for key in ("name", "model", "backend", "format", "quantization", "state", "state_message", "sha256"):
            if key in result:
                print(f"{key:<14} {result[key]}")
    return 1 if isinstance(result, dict) and result.get("state") == "failed" else 0
