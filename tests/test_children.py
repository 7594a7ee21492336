"""How the daemon starts its children, checked on a real child process: offline whatever the daemon's
environment says, no systemd notification socket, the OOM killer's first choice, niced."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance.children import CHILD_OOM_SCORE_ADJ, OFFLINE_ENV, child_env, child_setup

PROBE = ("import json, os; print(json.dumps({'env': dict(os.environ), 'nice': os.nice(0), "
         "'oom': int(open('/proc/self/oom_score_adj').read())}))")


def test_a_child_is_offline_unnotified_niced_and_the_first_oom_victim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # an operator's shell that would let a library reach a hub
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    out = subprocess.run([sys.executable, "-c", PROBE], env=child_env({"EXTRA": "1"}), preexec_fn=child_setup(5),
                         capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert {k: seen["env"].get(k) for k in OFFLINE_ENV} == OFFLINE_ENV
    assert "NOTIFY_SOCKET" not in seen["env"] and "WATCHDOG_USEC" not in seen["env"] and seen["env"]["EXTRA"] == "1"
    assert seen["oom"] == CHILD_OOM_SCORE_ADJ and seen["nice"] >= 5
