"""The .deb under a real systemd: install → active with READY → /healthz and a chat with the official client,
the packaged embeddings model deployed → the watchdog restarts a stopped daemon → an upgrade keeps an edited
conffile and the registry → remove keeps state, purge removes it. Slow: builds two package revisions and boots a
Debian root."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.packaging.nspawn import REPO, Machine, missing_tools

pytestmark = [pytest.mark.slow, pytest.mark.packaging,
              pytest.mark.skipif(os.geteuid() != 0 or bool(missing_tools()),
                                 reason=f"needs root and {', '.join(missing_tools())}")]
BASE = "http://127.0.0.1:8470"
STATE = Path("var/lib/private/slm-appliance")  # DynamicUser's real state directory
PROBE = Path(__file__).with_name("probe_chat.py")
EMBEDDINGS = "minilm-embeddings"


@functools.cache  # one build per revision per session: the container test reuses it
def build(revision: int) -> Path:
    env = {**os.environ, "DEB_REVISION": str(revision), "DEB_COMPRESS": "gzip", "DEB_LEVEL": "1"}
    out = subprocess.run([str(REPO / "packaging/deb/build.sh")], env=env, check=True, capture_output=True,
                         text=True, timeout=1800)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def debs() -> tuple[Path, Path]:
    return build(1), build(2)


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    booted = Machine()
    try:
        yield booted
    finally:
        booted.close()


def wait_ready(machine: Machine, name: str, timeout: float = 120) -> dict[str, Any]:
    """The deployment `name` once it is ready, as `slm-appliance deploy list --json` shows it."""
    deadline = time.monotonic() + timeout
    while True:
        listed = {d["name"]: d for d in json.loads(machine.run("slm-appliance", "deploy", "list", "--json").stdout)}
        if listed.get(name, {}).get("state") == "ready" or time.monotonic() > deadline:
            assert name in listed, sorted(listed)
            return dict(listed[name])
        time.sleep(1)


def chat(machine: Machine, key: str | None = None) -> dict[str, object]:
    key = key or (machine.root / STATE / "admin.key").read_text().strip()
    out = machine.host_in_its_network(sys.executable, str(PROBE), BASE, key)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_install_serve_watchdog_upgrade_purge(debs: tuple[Path, Path], machine: Machine) -> None:
    first, second = (machine.copy_in(deb) for deb in debs)
    machine.run("apt-get", "install", "-y", first)
    props = machine.wait_active()
    assert props["SubState"] == "running" and props["StatusText"], props  # READY=1 came with a status line
    seen = chat(machine)
    assert seen["health"]["status"] == "ok" and seen["no_key_status"] == 401, seen
    assert str(seen["answer"]).strip(), seen
    # The operator's CLI as root finds the daemon and the admin key on its own.
    models = json.loads(machine.run("slm-appliance", "models", "list", "--json").stdout)
    assert [m["name"] for m in models]
    embeddings = wait_ready(machine, EMBEDDINGS)  # the packaged MiniLM, deployed by the first start
    assert embeddings["params"]["embeddings"] is True and embeddings["model"] == "all-minilm-l6-v2", embeddings
    # Keys too, through the daemon: root's CLI leaves no root-owned store file (WAL) the service cannot write.
    app = json.loads(machine.run("slm-appliance", "keys", "create", "--name", "app1", "--json").stdout)
    assert str(chat(machine, str(app["token"]))["answer"]).strip()
    owned = machine.run("find", f"/{STATE}", "-maxdepth", "1", "-name", "state.db*", "-uid", "0").stdout
    assert not owned.strip(), owned

    machine.run("sh", "-c", f"kill -STOP {props['MainPID']}")  # hung, not dead: only the watchdog can notice
    restarted = machine.wait_active(timeout=120, restarts=1)
    assert restarted["MainPID"] != props["MainPID"]
    journal = machine.run("journalctl", "-u", "slm-appliance", "--no-pager").stdout
    assert "Watchdog timeout" in journal, journal[-2000:]
    assert str(chat(machine)["answer"]).strip()

    conffile = machine.root / "etc/slm-appliance/config.toml"
    conffile.write_text(conffile.read_text() + '\nlog_level = "debug"\n')
    machine.run("apt-get", "install", "-y", "-o", "Dpkg::Options::=--force-confold", second)
    assert 'log_level = "debug"' in conffile.read_text()
    assert "0.1.0-2" in machine.run("dpkg-query", "-W", "slm-appliance").stdout
    machine.wait_active()
    after = json.loads(machine.run("slm-appliance", "models", "list", "--json").stdout)
    assert after == models or [m["name"] for m in after] == [m["name"] for m in models]
    assert str(chat(machine)["answer"]).strip()

    machine.run("apt-get", "remove", "-y", "slm-appliance")
    assert (machine.root / STATE / "admin.key").is_file()  # remove keeps the registry, models and keys
    assert not (machine.root / "opt/slm-appliance").exists()
    machine.run("apt-get", "purge", "-y", "slm-appliance")
    assert not (machine.root / STATE).exists() and not (machine.root / "etc/slm-appliance").exists()
    assert machine.unit("LoadState")["LoadState"] in ("not-found", "masked")


# Checks that read inside every file of the bundled upstream wheels (torch's binaries for misspelt strings,
# copies of JavaScript, PHP and C libraries): half of lintian's 170 s on the 520 MB package here, and what they
# would find is the wheels' own, shipped as built (packaging/deb/lintian-overrides says why). Every other check
# runs, on the whole package.
UPSTREAM_CONTENT_CHECKS = ("binaries/spelling", "languages/javascript/embedded", "libraries/embedded",
                           "languages/php/pear/embedded", "languages/php/embedded")


@pytest.mark.skipif(shutil.which("lintian") is None, reason="needs lintian")
def test_lintian_reports_no_errors_or_warnings(debs: tuple[Path, Path]) -> None:
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "-X", ",".join(UPSTREAM_CONTENT_CHECKS),
                             str(debs[0])], capture_output=True, text=True, timeout=1200)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not tags, "\n".join(tags[:40]) or result.stderr
