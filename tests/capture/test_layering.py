"""Capture sits under the HTTP surfaces that call it: it may import the store, the error tree, names,
validation, keys and datasets, and nothing of gateway, api, web, deploy or daemon (the shape test's rule for
this package, kept with it)."""

from __future__ import annotations

import ast

from tests.helpers import REPO

ALLOWED = ("appliance.capture", "appliance.state", "appliance.errors", "appliance.names", "appliance.validation",
           "appliance.security", "appliance.datasets")


def test_capture_imports_only_what_sits_below_it() -> None:
    wrong = []
    for path in sorted((REPO / "appliance" / "capture").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            wrong += [f"{path.name} imports {n}" for n in names
                      if n.startswith("appliance") and not any(n == a or n.startswith(a + ".") for a in ALLOWED)]
    assert not wrong, wrong
