"""The CPU container image: built from the .deb on a locally imported Debian base, run read-only with every
capability dropped as a non-root user; /healthz, its HEALTHCHECK and a chat answer; a clean stop on SIGTERM;
state survives a restart. Slow: builds the package and the image."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.packaging.nspawn import MAKE_ROOT, REPO
from tests.packaging.test_deb import build

pytestmark = [pytest.mark.slow, pytest.mark.packaging,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("podman") or not shutil.which("mmdebstrap"),
                                 reason="needs root, podman and mmdebstrap")]
IMAGE = "localhost/slm-appliance:test"
# podman here: runc, and ulimits the default ones of this kernel refuse (../shared/FACTS.md).
CONTAINERS_CONF = ('[engine]\nruntime = "runc"\n'
                   '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    os.environ["CONTAINERS_CONF"] = str(conf)
    yield ["podman"]
    os.environ.pop("CONTAINERS_CONF", None)


def sh(*argv: str, timeout: float = 900) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image(podman: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tarball = sh(str(MAKE_ROOT), "container")
    base = f"localhost/slm-bookworm:{Path(tarball).stat().st_mtime_ns}"
    if subprocess.run([*podman, "image", "exists", base]).returncode != 0:
        sh(*podman, "import", tarball, base)
    context = tmp_path_factory.mktemp("context")
    shutil.copy(build(1), context)
    shutil.copy(REPO / "packaging/container/Containerfile", context)
    sh(*podman, "build", "--format", "docker", "--build-arg", f"BASE={base}", "-t", IMAGE, str(context),
       timeout=1200)
    yield IMAGE
    # 2.5 GB a build: a retagged image would stay behind, untagged, at every run
    subprocess.run([*podman, "rmi", "-f", IMAGE], capture_output=True)


def wait_healthy(url: str, timeout: float = 240) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return dict(httpx.get(f"{url}/healthz", timeout=2).json())
        except httpx.HTTPError:
            time.sleep(1)
    raise TimeoutError(url)


def test_read_only_non_root_container_serves_and_keeps_state(podman: list[str], image: str,
                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 10001, 10001)
    port = free_port()
    name = f"slm-test-{os.getpid()}"
    # The host's network namespace: the container runtime here has no bridge networking to publish through.
    sh(*podman, "run", "-d", "--name", name, "--read-only", "--cap-drop=all", "--security-opt", "no-new-privileges",
       "--network", "host", "-e", f"SLM_PORT={port}", "-e", "SLM_HOST=127.0.0.1",
       "-v", f"{state}:/var/lib/slm-appliance", image)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(url)["status"] == "ok"
        key = (state / "admin.key").read_text().strip()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        model = _wait_for_model(client)
        assert _chat(client, model).strip()
        inspect = json.loads(sh(*podman, "inspect", name))[0]
        assert inspect["Config"]["User"] == "10001:10001" and inspect["HostConfig"]["ReadonlyRootfs"]
        assert subprocess.run([*podman, "healthcheck", "run", name]).returncode == 0

        sh(*podman, "stop", "-t", "60", name)  # SIGTERM: the daemon stops its backend and exits 0
        assert json.loads(sh(*podman, "inspect", name))[0]["State"]["ExitCode"] == 0
        sh(*podman, "start", name)
        assert wait_healthy(url)["status"] == "ok"
        assert (state / "admin.key").read_text().strip() == key  # same registry, same keys
        assert _wait_for_model(client) == model
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "5", name], capture_output=True)


STARTER_NAME = "smollm2-135m-instruct"


def _wait_for_model(client: openai.OpenAI, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = [m.id for m in client.models.list().data]
        if STARTER_NAME in served:  # the default embeddings deployment is listed too (it answers embeddings only)
            return STARTER_NAME
        time.sleep(1)
    raise TimeoutError("no model served")


def _chat(client: openai.OpenAI, model: str, timeout: float = 240) -> str:
    """One answer; 503 while the starter's backend is still loading."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(client.chat.completions.create(model=model, max_tokens=24, temperature=0, messages=[
                {"role": "user", "content": "What is the capital of France?"}]).choices[0].message.content)
        except openai.InternalServerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
