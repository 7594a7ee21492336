"""The shape of the code, checked: module and function sizes, and the direction of imports between the layers
(hardware → profiles → plan → registry → jobs/deploy → backends → web → api/gateway → daemon; clients apart)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

TREES = ("appliance", "tui", "tests", "bench", "docs")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def _modules(*trees: str) -> list[Path]:
    return sorted(p for tree in trees for p in (REPO / tree).rglob("*.py") if ".venv" not in p.parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _package(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def test_no_module_over_300_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in _modules(*TREES) if (n := len(p.read_text().splitlines())) >
            MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_60_lines() -> None:
    long = []
    for path in _modules(*TREES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


# (importing package, packages it must not import): each rule is one arrow that must not point backwards.
FORBIDDEN = [
    ("appliance.api", ("appliance.gateway", "appliance.daemon")),  # the gateway and the control API are siblings
    ("appliance.gateway", ("appliance.api", "appliance.daemon")),
    ("appliance.web", ("appliance.api", "appliance.gateway", "appliance.daemon")),
    ("appliance.deploy", ("appliance.api", "appliance.gateway", "appliance.web", "appliance.daemon")),
    ("appliance.jobs", ("appliance.api", "appliance.gateway", "appliance.web", "appliance.daemon",
                        "appliance.deploy")),
    ("appliance.backends", ("appliance.deploy", "appliance.api", "appliance.gateway", "appliance.daemon")),
    ("appliance.registry", ("appliance.deploy", "appliance.jobs", "appliance.api", "appliance.gateway")),
    # Training runs inside jobs and feeds evaluation and export: it knows the registry and the store, never who
    # schedules it, checks it or serves what it made.
    ("appliance.training", ("appliance.jobs", "appliance.evaluation", "appliance.export", "appliance.deploy",
                            "appliance.backends", "appliance.web", "appliance.api", "appliance.gateway",
                            "appliance.daemon")),
    ("appliance.plan", ("appliance.registry", "appliance.deploy", "appliance.jobs", "appliance.training")),
    ("appliance.profiles", ("appliance.plan", "appliance.registry", "appliance.deploy", "appliance.jobs",
                            "appliance.training")),
    ("appliance.hardware", ("appliance.profiles", "appliance.plan", "appliance.registry", "appliance.deploy")),
    ("appliance.client", ("appliance.config", "appliance.core", "appliance.api", "appliance.web")),
    # The store is the bottom every stage writes through: it knows none of them.
    ("appliance.state", ("appliance.hardware", "appliance.profiles", "appliance.plan", "appliance.registry",
                         "appliance.datasets", "appliance.training", "appliance.evaluation", "appliance.export",
                         "appliance.jobs", "appliance.deploy", "appliance.backends", "appliance.security",
                         "appliance.web", "appliance.api", "appliance.gateway", "appliance.daemon")),
    # Keys sit on the store, under the HTTP surfaces that check them.
    ("appliance.security", ("appliance.jobs", "appliance.deploy", "appliance.backends", "appliance.web",
                            "appliance.api", "appliance.gateway", "appliance.daemon")),
    # The operator's commands change state only through the daemon's API (a root CLI writing SQLite directly left
    # root-owned WAL files the service could not write): not the store, nor what opens or writes it. Offline
    # commands read the box (hardware, profiles, plan, bundle); `daemon` starts the daemon.
    ("appliance.cli", ("appliance.state", "appliance.core", "appliance.security", "appliance.registry",
                       "appliance.datasets", "appliance.deploy", "appliance.web", "appliance.api",
                       "appliance.gateway")),
]


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN, ids=[rule[0] for rule in FORBIDDEN])
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = []
    for path in _modules(package.replace(".", "/")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                wrong.append(f"{_package(path)} imports {name}")
    assert not wrong, wrong


def test_an_operator_command_loads_no_store() -> None:
    # The rule above sees each module's own imports; this sees what the CLI loads through all of them (a store
    # reached through a helper would open state.db as whoever runs the CLI). Only `daemon` may load it.
    modules = [_package(p) for p in _modules("appliance/cli")]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "sys.modules['appliance.cli.main']._parser()\n"
            "print(sorted(n for n in sys.modules if n.split('.')[:2] in (['appliance', 'state'], "
            "['appliance', 'security'], ['appliance', 'core'])))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_tui_imports_nothing_of_the_daemon_but_its_client() -> None:
    wrong = [f"{_package(p)} imports {name}" for p in _modules("tui") for name in _imports(p)
             if name.startswith("appliance") and not name.startswith("appliance.client")]
    assert not wrong, wrong


def test_only_the_deployment_store_writes_the_deployments_table() -> None:
    # (The registry reads it, in the transaction of a model delete, to refuse deleting a model in use.)
    statements = ("DELETE FROM deployments", "INTO deployments", "UPDATE deployments")
    touching = {_package(p) for p in _modules("appliance") if any(s in p.read_text() for s in statements)}
    assert touching == {"appliance.deploy.store"}, touching
