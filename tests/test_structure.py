"""The shape of the code, checked: module and function sizes, and the direction of imports between the layers
(hardware → profiles → plan → registry → jobs/deploy → backends → web → api/gateway → daemon; clients apart)."""

from __future__ import annotations

import ast
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
    ("appliance.plan", ("appliance.registry", "appliance.deploy", "appliance.jobs")),
    ("appliance.profiles", ("appliance.plan", "appliance.registry", "appliance.deploy", "appliance.jobs")),
    ("appliance.hardware", ("appliance.profiles", "appliance.plan", "appliance.registry", "appliance.deploy")),
    ("appliance.client", ("appliance.config", "appliance.core", "appliance.api", "appliance.web")),
]


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN, ids=[rule[0] for rule in FORBIDDEN])
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = []
    for path in _modules(package.replace(".", "/")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                wrong.append(f"{_package(path)} imports {name}")
    assert not wrong, wrong


def test_tui_imports_nothing_of_the_daemon_but_its_client() -> None:
    wrong = [f"{_package(p)} imports {name}" for p in _modules("tui") for name in _imports(p)
             if name.startswith("appliance") and not name.startswith("appliance.client")]
    assert not wrong, wrong


def test_only_the_deployment_store_writes_the_deployments_table() -> None:
    # (The registry reads it, in the transaction of a model delete, to refuse deleting a model in use.)
    statements = ("DELETE FROM deployments", "INTO deployments", "UPDATE deployments")
    touching = {_package(p) for p in _modules("appliance") if any(s in p.read_text() for s in statements)}
    assert touching == {"appliance.deploy.store"}, touching
