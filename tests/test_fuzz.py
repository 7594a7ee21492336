"""The whole API, generated from its own OpenAPI document: schemathesis fuzzes every operation with an admin
key, an inference key and no key and no response may be a 5xx; a sweep of every operation checks that none
answers without the scope it needs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.testing.daemon import DaemonProcess

pytestmark = pytest.mark.slow
PUBLIC = {"/healthz", "/readyz"}
INFERENCE_PREFIXES = ("/v1/", "/metrics", "/openapi.json")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # No starter model: a fuzzed chat request must not turn into minutes of generation; the /v1 routes still
    # parse, check and route (to a 404) everything they are sent.
    env = {"SLM_STARTER_MODEL": "false", "SLM_RATE_LIMIT_PER_MINUTE": "1000000",
           "SLM_AUTH_FAILURES_PER_MINUTE": "1000000"}
    proc = DaemonProcess(tmp_path_factory.mktemp("fuzz") / "state", env=env).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def _inference_key(daemon: DaemonProcess, name: str) -> str:
    response = httpx.post(f"{daemon.url}/api/v1/keys", json={"name": name, "scope": "inference"},
                          headers=daemon.admin_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def _spec(daemon: DaemonProcess, tmp_path: Path) -> Path:
    spec = daemon.get("/openapi.json").json()
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(spec))
    return path


def _operations(spec: dict[str, object]) -> list[tuple[str, str]]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return [(method.upper(), path) for path, item in paths.items() for method in item]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "probe", path)


def test_no_operation_answers_without_its_scope(daemon: DaemonProcess) -> None:
    spec = daemon.get("/openapi.json").json()
    operations = _operations(spec)
    assert len(operations) > 30, operations
    inference = {"Authorization": f"Bearer {_inference_key(daemon, 'scope-probe')}"}
    for method, path in operations:
        url = f"{daemon.url}{_concrete(path)}"
        anonymous = httpx.request(method, url, json={}, timeout=30)
        if path in PUBLIC:
            assert anonymous.status_code == 200, (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        scoped = httpx.request(method, url, json={}, headers=inference, timeout=30)
        if path.startswith(INFERENCE_PREFIXES):
            assert scoped.status_code not in (401, 403), (method, path, scoped.status_code)
        else:
            assert scoped.status_code == 403, (method, path, scoped.status_code)
    # The key's scope is kept: the admin key still works after the sweep (nothing above revoked it).
    assert daemon.get("/api/v1/keys").status_code == 200


# Without the admin scope most operations stop at 401/403, so a shorter run covers them; the
# sweep above already proves each operation refuses a missing scope.
_FUZZ_SECONDS = {"admin": "60", "inference": "25", "none": "20"}


@pytest.mark.skipif(shutil.which("st", path=str(Path(sys.executable).parent)) is None,
                    reason="schemathesis is not installed (the test extra has it)")
@pytest.mark.parametrize("who", ["admin", "inference", "none"])
def test_schemathesis_finds_no_server_error(daemon: DaemonProcess, tmp_path: Path, who: str) -> None:
    headers = {"admin": daemon.admin_headers(), "none": {},
               "inference": {"Authorization": f"Bearer {_inference_key(daemon, f'fuzz-{uuid.uuid4().hex[:8]}')}"}}[who]
    spec = _spec(daemon, tmp_path)
    st = Path(sys.executable).parent / "st"
    args = [str(st), "run", str(spec), "--url", daemon.url, "--checks", "not_a_server_error",
            "--max-examples", "10", "--seed", "1",
            # One worker: hypothesis parses lambdas' source with ast, which CPython 3.11.7 can fail in threads
            # ("AST constructor recursion depth mismatch"), a crash of the fuzzer, not of the daemon.
            "--workers", "1", "--request-timeout", "30",
            "--suppress-health-check", "all", "--warnings", "off", "--max-time", _FUZZ_SECONDS[who],
            # The admin key must survive its own run, or the rest of the fuzzing only tests 401s.
            "--exclude-path-regex", "^/api/v1/keys/\\{name\\}$"]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "500" not in daemon.log() or "unhandled error" not in daemon.log(), daemon.log()[-4000:]
