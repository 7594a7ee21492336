"""A real daemon process on a free loopback port, polled until healthy, torn down cleanly: what the end-to-end
tests and the benches drive (never a stand-in)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from appliance.client import ADMIN_KEY_FILE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProcess:
    """`slm-appliance daemon` as a subprocess, like systemd runs it.

    `embeddings`: whether its first start deploys the default embeddings model (an operator's daemon does). Off
    unless asked: a second llama-server costs every test daemon 2-3 s until its deployments are ready and 63 MiB
    (measured on the 2-core box), and only the tests of embeddings and semantic dedup need it (`env` may still set
    SLM_DEFAULT_EMBEDDINGS itself)."""

    def __init__(self, state_dir: Path, port: int | None = None, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None, config: Path | None = None, embeddings: bool = False) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "SLM_DEFAULT_EMBEDDINGS": "true" if embeddings else "false",
                    **(env or {})}
        self.extra_args = extra_args or []
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir.parent / f"daemon-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin_key(self) -> str:
        return (self.state_dir / ADMIN_KEY_FILE).read_text().strip()

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key()}"}

    def start(self, timeout: float = 60.0, wait_ready: bool = True) -> DaemonProcess:
        args = [sys.executable, "-m", "appliance", "--state-dir", str(self.state_dir)]
        if self.config:
            args += ["--config", str(self.config)]
        args += [*self.extra_args, "daemon", "--port", str(self.port)]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, then SIGKILL the whole group; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=kw.pop("headers", self.admin_headers()), timeout=30, **kw)


def wait_deployment(daemon: DaemonProcess, name: str, state: str = "ready", timeout: float = 120.0) -> dict[str, Any]:
    """Poll the deployments API until `name` reaches `state`."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = daemon.get(f"/api/v1/deployments/{name}")
        if response.status_code == 200:
            last = response.json()
            if last["state"] == state:
                return last
        time.sleep(0.3)
    raise TimeoutError(f"{name} not {state} after {timeout}s: {last}\n{daemon.log()[-3000:]}")


def backend_key_headers(pid: int) -> dict[str, str]:
    """The key of a backend process, as the gateway sends it, read from the process's environment: only its own
    user (a test or bench run as the daemon's user) and root can read it, the same reach as the daemon's memory."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name in (b"LLAMA_API_KEY", b"VLLM_API_KEY"):
            return {"Authorization": f"Bearer {value.decode()}"}
    raise LookupError(f"no backend key in the environment of process {pid}")


def backend_headers(daemon: DaemonProcess, deployment: str) -> dict[str, str]:
    """The key of `deployment`'s live backend process."""
    return backend_key_headers(int(daemon.get(f"/api/v1/deployments/{deployment}").json()["pid"]))


def backend_socket(pid: int) -> str:
    """The Unix socket a backend process listens on (the gateway's hop), read from its command line: `--uds PATH`
    or a `.sock` entry of `--host`."""
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    for flag, value in itertools.pairwise(argv):
        if flag == "--uds":
            return value
        if flag == "--host":
            sockets = [h for h in value.split(",") if h.endswith(".sock")]
            if sockets:
                return sockets[0]
    raise LookupError(f"backend process {pid} listens on no Unix socket")
