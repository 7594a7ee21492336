"""Zero egress: the daemon, a fine-tune worker, a distillation worker, llama.cpp backends (the starter and the
default embeddings model) and the official client, all in a network namespace with nothing but loopback
(`unshare -n`), succeed; and strace of the whole process tree shows every connection attempt going to loopback, a
Unix socket or the kernel (netlink), none anywhere else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("strace")),
                                 reason="needs root, unshare and strace")]
SCENARIO = REPO / "tests" / "egress_scenario.py"
INET = re.compile(r'sa_family=AF_INET6?, sin6?_port=htons\((\d+)\), (?:sin6_flowinfo=[^,]*, )?'
                  r'(?:sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')
FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
LOCAL_FAMILIES = {"AF_UNIX", "AF_NETLINK", "AF_UNSPEC"}
LOOPBACK = ("127.", "::1", "::ffff:127.")


def addresses(trace: str) -> list[tuple[str, str]]:
    """(family, address) of every connect/sendto/sendmsg with a destination in an strace log."""
    seen = []
    for line in trace.splitlines():
        if not re.search(r"\b(connect|sendto|sendmsg)\(", line):
            continue
        for family in FAMILY.findall(line):
            if family in LOCAL_FAMILIES:
                seen.append((family, ""))
        for match in INET.finditer(line):
            seen.append(("AF_INET", match.group(2) or match.group(3)))
    return seen


def test_addresses_parses_strace_lines() -> None:
    trace = "\n".join([
        '12 connect(5, {sa_family=AF_INET, sin_port=htons(8470), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '12 connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2606:4700::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH',
        '13 connect(3, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 110) = 0',
        '14 sendto(7, "...", 20, 0, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16) = -1',
    ])
    assert addresses(trace) == [("AF_INET", "127.0.0.1"), ("AF_INET", "2606:4700::1"), ("AF_UNIX", ""),
                                ("AF_INET", "10.0.0.2")]


def test_daemon_finetune_and_chat_work_with_no_network_and_try_none(tmp_path: Path) -> None:
    trace = tmp_path / "connect.trace"
    inner = (f"ip link set lo up && exec strace -f -qq --seccomp-bpf -e trace=connect,sendto,sendmsg "
             f"-e signal=none -o {trace} {sys.executable} {SCENARIO} {tmp_path / 'state'}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["finetune"] == "succeeded" and seen["answer"].strip(), seen
    assert seen["feedback"] == 200 and seen["export_job"] == "succeeded", seen  # capture, feedback, review export
    assert seen["dpo"] == "succeeded", seen  # TRL, accelerate and datasets in a DPO worker
    assert seen["distill"] == "succeeded", seen  # a distillation worker calling the gateway
    assert seen["store"] == "completed" and seen["cited"], seen  # ingestion, then file_search citing the file
    found = addresses(trace.read_text())
    outside = [(f, a) for f, a in found if f == "AF_INET" and not a.startswith(LOOPBACK)]
    assert not outside, outside
    assert ("AF_INET", "127.0.0.1") in found  # the trace did see the loopback traffic: it was working
