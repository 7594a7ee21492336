"""Job kinds have one home: each is one module of appliance/jobs/kinds plus one registry line, and the API, the
runner, the worker, the CLI and the TUI read the registry (tests/test_new_job_kind.py adds one that way). Here:
nothing else names or lists a job type, the registry stays light for the CLI, the form fields come from the params
models, and a real daemon serves the kinds and refuses with the shared error classes."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from appliance.errors import BadRequest
from appliance.jobs.kinds import KINDS
from appliance.jobs.kinds.form import describe, fields
from appliance.jobs.models import SubmitJob
from tests.helpers import REPO, DaemonProcess

STARTER = "smollm2-135m-instruct"
KINDS_DIR = REPO / "appliance" / "jobs" / "kinds"
# Clients speak the API with literal bodies, as any client would: the test drivers and benches, and the client's
# fallback for a daemon too old to publish its job types.
CLIENTS = ("appliance/testing/", "appliance/client/calls.py")
# Kind names that are also ordinary words of the code base: checked only where they are listed with other kinds.
ORDINARY_WORDS = {"eval": "a dataset split, torch's eval mode, a column", "export": "a job folder, a registry kind",
                  "dpo": "a training objective", "orpo": "a training objective",
                  "kto": "a training objective and a dataset record kind"}
# Training objectives the preference kinds are named after: the training core and the planner list them as
# objectives (never as job types), so lists of them are not lists of job types.
OBJECTIVES = {"dpo", "kto", "orpo"}


def _sources() -> list[tuple[str, ast.AST]]:
    out: list[tuple[str, ast.AST]] = []
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
            if isinstance(node, collections) and len(set(_strings(node)) & names - OBJECTIVES) >= 2]
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


def _cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "SLM_API_KEY"}, "SLM_PORT": str(daemon.port)}
    return subprocess.run([sys.executable, "-m", "appliance", "--state-dir", str(daemon.state_dir), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_daemon_serves_the_kinds_and_refuses_what_preflight_refuses(daemon: DaemonProcess) -> None:
    assert httpx.get(f"{daemon.url}/api/v1/job-kinds").status_code == 401
    served = daemon.get("/api/v1/job-kinds").json()
    assert served == [describe(kind).model_dump(mode="json") for kind in KINDS]  # what the TUI's replay holds
    unknown = httpx.post(f"{daemon.url}/api/v1/jobs", headers=daemon.admin_headers(), json={"type": "mine-bitcoin"})
    assert unknown.status_code == 422 and "known: finetune, eval, export, dataset-import" in unknown.text
    # The shared error classes, with the statuses, codes and params the pre-flights always gave.
    for body, status, code, param in [
        ({"type": "eval", "params": {"model": "nope"}}, 404, "not_found", "params.model"),
        ({"type": "eval", "params": {"model": STARTER, "dataset": "nope"}}, 404, "not_found", "params.dataset"),
        ({"type": "export", "params": {"adapter": STARTER}}, 400, "bad_request", "params.adapter"),
        ({"type": "dataset-import", "params": {"path": "/x.jsonl", "name": "x", "bogus": 1}}, 400, "bad_request",
         "params.bogus"),
    ]:
        refused = httpx.post(f"{daemon.url}/api/v1/jobs", headers=daemon.admin_headers(), json=body)
        error = refused.json()["error"]
        assert (refused.status_code, error["code"], error["param"]) == (status, code, param), refused.text
    # The CLI's generated options reach the same checks.
    missing = _cli(daemon, "jobs", "submit", "eval", "--model", "nope", "--no-wait")
    assert missing.returncode == 1 and "no model" in missing.stderr, missing.stderr
    wrong = _cli(daemon, "jobs", "submit", "export", "--adapter", STARTER, "--variant", "Q3_XS", "--no-wait")
    assert wrong.returncode == 1 and "params.variants.0" in wrong.stderr, wrong.stderr
    # A job's log, its tail read through logfiles.tail.
    job = httpx.post(f"{daemon.url}/api/v1/datasets", headers=daemon.admin_headers(),
                     json={"path": "/etc/passwd", "name": "nope"}).json()
    for _ in range(300):
        if daemon.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "failed":
            break
        time.sleep(0.2)
    log = daemon.get(f"/api/v1/jobs/{job['id']}/logs", params={"lines": 1}).text
    assert "outside the allowed import roots" in log and "\n" not in log.strip()
