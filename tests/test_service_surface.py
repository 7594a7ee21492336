"""Deployments have one front door: `deploy.service.Deployments` with a closed surface. Nothing outside
`appliance/deploy` reaches its parts (reconciler, routing table, history, attached adapters, fit planner); the
gateway gets a read-only view. Checked on the source, so a new reach-through fails here, not in review."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from appliance.deploy.service import Deployments
from appliance.deploy.view import GatewayView
from tests.helpers import REPO

# What the rest of the appliance may import of appliance.deploy: the service, its data, its errors, the view
# and the compiled policy it hands out.
PUBLIC_MODULES = {"appliance.deploy.service", "appliance.deploy.models", "appliance.deploy.errors",
                  "appliance.deploy.view", "appliance.deploy.policies"}
PARTS = {"reconciler", "routing", "planner", "_parts"}
STORES = {"history", "adapters"}  # as attributes whose own members are used: x.history.record(...)
SURFACE = {"create", "start", "stop", "delete", "switch", "rollback", "attach", "detach", "logs", "all", "get",
           "history_of", "adapters_of", "set_policy", "policies_of", "set_shadow", "clear_shadow", "start_canary",
           "promote_canary", "abort_canary", "trials_of", "auto_rollback", "reconcile", "shutdown", "pause_all",
           "resume", "gateway_view"}


def _outside_deploy() -> list[Path]:
    # (The TUI talks HTTP only and imports nothing of the daemon: tests/test_structure.py.)
    trees = [REPO / "appliance", REPO / "bench"]
    return sorted(p for tree in trees for p in tree.rglob("*.py") if "deploy" not in p.relative_to(REPO).parts)


def test_nothing_outside_deploy_imports_its_parts() -> None:
    wrong = []
    for path in _outside_deploy():
        for node in ast.walk(ast.parse(path.read_text())):
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("appliance.deploy") and module not in PUBLIC_MODULES:
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, wrong


def test_nothing_outside_deploy_reaches_into_the_service() -> None:
    wrong = []
    for path in _outside_deploy():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PARTS:
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr in STORES:
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.value.attr}.{node.attr}")
    assert not wrong, wrong


def test_the_service_surface_is_closed() -> None:
    public = {name for name, _ in inspect.getmembers(Deployments) if not name.startswith("_")}
    assert public == SURFACE, public ^ SURFACE


def test_the_gateway_view_cannot_change_anything() -> None:
    public = {name for name, _ in inspect.getmembers(GatewayView) if not name.startswith("_")}
    assert public == {"route", "deployment_of", "policy", "canary", "shadow", "model_of", "state_of", "deployments",
                      "ready_processes", "restarts"}


def test_only_the_service_writes_history_and_audit_of_deployments() -> None:
    deploy = REPO / "appliance" / "deploy"
    historians = {p.name for p in deploy.glob("*.py") if "history.record(" in p.read_text()}
    assert historians == {"service.py"}, historians
    # Audit lines: the service, and the two of its parts that carry a whole change (a policy, a trial).
    auditors = {p.name for p in deploy.glob("*.py") if ".audit(" in p.read_text()}
    assert auditors == {"service.py", "policies.py", "trials.py"}, auditors
    elsewhere = [str(p.relative_to(REPO)) for p in (REPO / "appliance").rglob("*.py")
                 if "deploy" not in p.parts and '"deployment.' in p.read_text()]
    assert not elsewhere, elsewhere


def test_backends_are_named_only_in_their_own_modules() -> None:
    """Backend facts live in appliance/backends (and profiles/*.toml name one): nothing else tests a name."""
    names = {"llamacpp", "vllm"}
    wrong = []
    for tree in ("appliance", "tui"):
        for path in sorted((REPO / tree).rglob("*.py")):
            if path.is_relative_to(REPO / "appliance" / "backends"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in names:
                    wrong.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not wrong, wrong
