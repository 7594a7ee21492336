"""A booted Debian root under a real systemd (systemd-nspawn -b), driven with nsenter from the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
MAKE_ROOT = REPO / "packaging" / "make-root.sh"
TOOLS = ("mmdebstrap", "systemd-nspawn", "nsenter", "dpkg-deb")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class Machine:
    """A throwaway copy of the cached root, booted with its own network namespace (loopback only)."""

    def __init__(self) -> None:
        template = subprocess.run([str(MAKE_ROOT), "systemd"], check=True, capture_output=True,
                                  text=True).stdout.strip()
        self.dir = Path(tempfile.mkdtemp(prefix="slm-nspawn-", dir="/var/tmp"))
        self.root = self.dir / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", template, str(self.root)], check=True)
        self.console = (self.dir / "console.log").open("wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-b", "-D", str(self.root), "--register=no", "--keep-unit", "--console=passive",
             "--private-network", f"--machine=slm-{os.getpid()}"],
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.leader = self._wait_for_leader()
        self._wait_booted()

    def _wait_for_leader(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.nspawn.poll() is None, self.console_text()
            for child in psutil.Process(self.nspawn.pid).children():
                return child.pid
            time.sleep(0.2)
        raise TimeoutError(self.console_text())

    def _wait_booted(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"container did not boot: {state}\n{self.console_text()}")

    def console_text(self) -> str:
        return (self.dir / "console.log").read_text(errors="replace")[-4000:]

    def run(self, *argv: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A command in every namespace of the container, with a clean environment."""
        result = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "env", "-i", f"PATH={PATH}",
                                 "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", *argv],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def host_in_its_network(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A host program (the host's Python with the openai client) in the container's network namespace."""
        return subprocess.run(["nsenter", "-t", str(self.leader), "-n", *argv], capture_output=True, text=True,
                              timeout=timeout)

    def copy_in(self, path: Path) -> str:
        """Into /var/tmp of the container (nspawn mounts a tmpfs on /tmp)."""
        shutil.copy(path, self.root / "var" / "tmp" / path.name)
        return f"/var/tmp/{path.name}"

    def unit(self, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", "slm-appliance.service", *(f"-p{p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_active(self, timeout: float = 300, restarts: int | None = None) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            props = self.unit("ActiveState", "SubState", "NRestarts", "MainPID", "StatusText", "Result")
            if props["ActiveState"] == "active" and (restarts is None or int(props["NRestarts"]) >= restarts):
                return props
            if props["ActiveState"] == "failed":
                break
            time.sleep(1)
        journal = self.run("journalctl", "-u", "slm-appliance", "--no-pager", "-n", "80", check=False).stdout
        raise AssertionError(f"slm-appliance not active: {props}\n{journal}")

    def close(self) -> None:
        self.nspawn.terminate()  # nspawn asks the container's systemd to power off
        try:
            self.nspawn.wait(60)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait()
        self.console.close()
        shutil.rmtree(self.dir, ignore_errors=True)
