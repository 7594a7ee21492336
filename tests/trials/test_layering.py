"""Trials sit under the HTTP surfaces and the deployment service that call them: they may import the store, the
error tree, names, validation and the capture models, and nothing of gateway, api, web, deploy or daemon."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers import REPO

ALLOWED = ("appliance.trials", "appliance.state", "appliance.errors", "appliance.names", "appliance.validation",
           "appliance.capture.models")


def test_trials_import_only_what_sits_below_them() -> None:
    wrong = []
    for path in sorted((REPO / "appliance" / "trials").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            wrong += [f"{path.name} imports {n}" for n in names
                      if n.startswith("appliance") and not any(n == a or n.startswith(a + ".") for a in ALLOWED)]
    assert not wrong, wrong


def test_importing_trials_loads_no_sacrebleu() -> None:
    # sacrebleu loads on the first pair (~0.15 s), not when the daemon imports the package.
    code = "import sys, appliance.trials; print('sacrebleu' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]
