"""Job kinds have one home: each is one module of appliance/jobs/kinds plus one registry line, and the API, the
runner, the worker, the CLI and the TUI read the registry. Checked by adding a kind exactly that way to a copy
of the package and running it end to end (CLI options, submit validation, pre-flight, a real worker process)."""

from __future__ import annotations

import ast
import filecmp
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.errors import BadRequest
from appliance.jobs.kinds import KINDS
from appliance.jobs.kinds.form import describe, fields
from appliance.jobs.models import SubmitJob
from tests.helpers import REPO

KINDS_DIR = REPO / "appliance" / "jobs" / "kinds"
# Clients speak the API with literal bodies, as any client would: the test drivers and benches, and the client's
# fallback for a daemon too old to publish its job types.
CLIENTS = ("appliance/testing/", "appliance/client/calls.py")
# Kind names that are also ordinary words of the code base: checked only where they are listed with other kinds.
ORDINARY_WORDS = {"eval": "a dataset split, torch's eval mode, a column", "export": "a job folder, a registry kind"}


def _sources() -> list[tuple[str, ast.AST]]:
    out = []
    for tree in ("appliance", "tui"):
        for path in sorted((REPO / tree).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if not path.is_relative_to(KINDS_DIR) and not rel.startswith(CLIENTS):
                out.append((rel, ast.parse(path.read_text())))
    return out


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_job_type_is_named_outside_the_kinds_package() -> None:
    names = set(KINDS.names())
    hits = [f"{rel}: {name!r}" for rel, tree in _sources() for name in sorted(set(_strings(tree)) & names)
            if name not in ORDINARY_WORDS]
    assert not hits, f"job types named outside appliance/jobs/kinds: {hits}"


def test_no_list_of_job_types_outside_the_kinds_package() -> None:
    names = set(KINDS.names())
    collections = (ast.Tuple, ast.List, ast.Set, ast.Dict)
    hits = [f"{rel}:{node.lineno}" for rel, tree in _sources() for node in ast.walk(tree)
            if isinstance(node, collections) and len(set(_strings(node)) & names) >= 2]
    assert not hits, f"lists of job types outside appliance/jobs/kinds: {hits}"


def test_each_kind_module_is_registered_and_its_handler_exists() -> None:
    modules = {p.stem for p in KINDS_DIR.glob("*.py")} - {"__init__", "base", "form", "checks"}
    declared = [importlib.import_module(f"appliance.jobs.kinds.{m}").KIND for m in sorted(modules)]
    assert sorted(kind.name for kind in declared) == sorted(KINDS.names())  # none forgotten in the registry
    for kind in KINDS:
        module, function = kind.handler.split(":")
        spec = importlib.util.find_spec(module)  # found, not imported: handlers may pull in torch
        assert spec is not None and spec.origin, kind.handler
        defined = {n.name for n in ast.parse(Path(spec.origin).read_text()).body if isinstance(n, ast.FunctionDef)}
        assert function in defined, kind.handler


def test_the_registry_and_the_cli_stay_light() -> None:
    """The CLI imports every kind to build its options: no torch, transformers, numpy or FastAPI for that."""
    code = ("import sys, appliance.jobs.kinds, appliance.jobs.kinds.form, appliance.cli.jobs_cli; "
            "print([m for m in ('torch', 'transformers', 'numpy', 'gguf', 'fastapi', 'appliance.registry', "
            "'appliance.core') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         check=True).stdout
    assert out.strip() == "[]"


def test_unknown_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown job type 'mine-bitcoin'; known: finetune, eval"):
        SubmitJob.model_validate({"type": "mine-bitcoin"})
    with pytest.raises(BadRequest, match="known: finetune"):
        KINDS.get("mine-bitcoin")
    assert SubmitJob.model_json_schema()["properties"]["type"]["enum"] == KINDS.names()


def test_params_are_checked_with_the_field_named() -> None:
    with pytest.raises(BadRequest) as refused:
        KINDS.get("export").check(None, {"adapter": "a", "variants": ["Q3_XS"]})  # type: ignore[arg-type]
    assert refused.value.status == 400 and refused.value.param == "params.variants.0"
    assert refused.value.message.startswith("params.variants.0: Input should be 'Q8_0'")


def test_form_fields_come_from_the_params_models() -> None:
    by_kind = {kind.name: {f.name: f for f in fields(kind.params)} for kind in KINDS}
    finetune = by_kind["finetune"]
    assert [f.cli for f in finetune.values()] == ["--base-model", "--dataset", "--adapter-name", "--golden", "--set"]
    assert finetune["base_model"].required and finetune["base_model"].source == "models" and finetune["base_model"].plan
    assert not finetune["golden"].in_form and finetune["golden"].path
    overrides = finetune["overrides"]
    assert overrides.prefill == "profile.training"
    assert [(e.name, e.type) for e in overrides.entries] == [
        ("max_steps", "integer"), ("epochs", "number"), ("learning_rate", "number"), ("batch_size", "integer"),
        ("lora_r", "integer"), ("max_seq_length", "integer")]
    variants = by_kind["export"]["variants"]
    assert variants.type == "list" and variants.cli == "--variant" and "Q4_K_M" in (variants.choices or [])
    assert by_kind["eval"]["max_new_tokens"].default == 48 and by_kind["eval"]["max_new_tokens"].type == "integer"
    assert by_kind["dataset-import"]["strict"].type == "boolean"
    info = describe(KINDS.get("finetune"))
    assert info.trains and info.params_schema["required"] == ["base_model", "dataset"]


# The kind a later issue might add, written the way docs/architecture.md says: one module, handler included.
ECHO = '''"""`echo`: repeats a text (added by tests/test_job_kinds.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import BadRequest
from appliance.jobs.events import Emitter
from appliance.jobs.kinds.base import JobKind, form


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., description="What to say", json_schema_extra=form(label="Text"))
    times: int = Field(1, ge=1, le=5, description="How many times")


def preflight(appliance: Any, job: EchoParams) -> dict[str, Any]:
    if job.text == "nothing":
        raise BadRequest("nothing to echo", param="params.text")
    return {**job.model_dump(), "resolved": {"words": len(job.text.split()) * job.times}}


def run(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    params = spec["params"]
    emitter.progress(phase="echoing", step=1, total=1, force=True)
    return {"echo": " ".join([params["text"]] * params["times"]), "words": params["resolved"]["words"]}


KIND = JobKind(name="echo", summary="repeat a text", params=EchoParams, handler="appliance.jobs.kinds.echo:run",
               preflight=preflight, trains=True)
'''

# Runs inside the copy: every reader of the registry sees the new kind.
DRIVER = '''
import argparse, asyncio, json, sys
from pathlib import Path

import appliance
from appliance.cli.job_submit import submit_params
from appliance.cli.jobs_cli import add_job_commands
from appliance.errors import BadRequest
from appliance.jobs.kinds import KINDS
from appliance.jobs.kinds.form import describe
from appliance.jobs.models import SubmitJob
from appliance.jobs.runner import JobRunner, ServingPause
from appliance.jobs.store import JobStore
from appliance.state.store import StateStore

parser = argparse.ArgumentParser()
add_job_commands(parser.add_subparsers(dest="command"))
args = parser.parse_args(["jobs", "submit", "echo", "--text", "hello there", "--times", "2", "--no-wait"])
kind = KINDS.get(SubmitJob.model_validate({"type": args.type}).type)
params = submit_params(args, kind)
try:
    kind.check(None, {"text": "nothing"})
    refused = None
except BadRequest as exc:
    refused = [exc.status, exc.param]
calls = []

async def pause(reason):
    calls.append("pause")
    return ["blue"]

async def resume(names):
    calls.append("resume")

async def run():
    state = Path(sys.argv[1])
    runner = JobRunner(JobStore(StateStore(state / "state.db").open()), state, [], 512,
                       serving_pause=ServingPause(pause, resume))
    runner.start()
    job = runner.submit(kind.name, kind.check(None, params))
    for _ in range(600):
        job = runner.jobs.get(job.id)
        if job.state in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    await runner.shutdown()
    return job

job = asyncio.run(run())
print(json.dumps({"package": appliance.__file__, "params": params, "refused": refused, "calls": calls,
                  "fields": [f.name for f in describe(kind).fields], "job": job.model_dump(mode="json")}))
'''


def _add_echo(copy: Path) -> None:
    """The whole change: the module, and its name on one new line of the registry."""
    (copy / "appliance/jobs/kinds/echo.py").write_text(ECHO)
    registry = copy / "appliance/jobs/kinds/__init__.py"
    lines = registry.read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if re.fullmatch(r'\s+"\w+",\n', line))
    lines.insert(last + 1, '    "echo",\n')
    registry.write_text("".join(lines))


def _changed(old: Path, new: Path) -> tuple[list[str], list[str]]:
    """Files added and files changed from `old` to `new` (recursively)."""
    diff = filecmp.dircmp(old, new, ignore=["__pycache__"])
    added = [f for f in diff.right_only]
    changed = list(diff.diff_files)
    for name, sub in diff.subdirs.items():
        more_added, more_changed = _changed(Path(sub.left), Path(sub.right))
        added += [f"{name}/{f}" for f in more_added]
        changed += [f"{name}/{f}" for f in more_changed]
    return added, changed


def test_a_new_kind_is_one_module_and_one_line(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(REPO / "appliance", copy / "appliance", ignore=shutil.ignore_patterns("__pycache__"))
    _add_echo(copy)
    added, changed = _changed(REPO / "appliance", copy / "appliance")
    assert (added, changed) == (["jobs/kinds/echo.py"], ["jobs/kinds/__init__.py"])
    before = (REPO / "appliance/jobs/kinds/__init__.py").read_text().splitlines()
    after = (copy / "appliance/jobs/kinds/__init__.py").read_text().splitlines()
    assert len(after) == len(before) + 1 and set(before) <= set(after)

    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "state")], capture_output=True, text=True,
                            cwd=copy, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["package"].startswith(str(copy))
    assert seen["params"] == {"text": "hello there", "times": 2}  # CLI options made from the params model
    assert seen["fields"] == ["text", "times"]  # what GET /api/v1/job-kinds serves, and the TUI form shows
    assert seen["refused"] == [400, "params.text"]  # its pre-flight, through the shared error classes
    job = seen["job"]
    logs = "".join(p.read_text() for p in (tmp_path / "state" / "logs").glob("*.log"))
    assert job["state"] == "succeeded", (job, logs)
    assert job["result"] == {"echo": "hello there hello there", "words": 4}  # the real worker ran its handler
    assert job["progress"]["phase"] == "echoing"
    assert seen["calls"] == ["pause", "resume"]  # trains=True: the runner paused serving around it
    with pytest.raises(ValidationError):
        SubmitJob.model_validate({"type": "echo"})  # and without that line, nobody knows it
