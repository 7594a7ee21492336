"""Adding a job kind is one module of appliance/jobs/kinds plus one registry line: checked by doing exactly that to
a copy of the package and running the new kind end to end there (CLI options, submit validation, pre-flight, the
runner and a real worker process). A kind that needed one more touch anywhere would fail here."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.jobs.models import SubmitJob
from tests.helpers import REPO

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
