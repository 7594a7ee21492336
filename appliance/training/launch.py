"""A data-parallel run as one supervised job: the worker starts one rank per process itself
(`python -m appliance.training.rank`), with the environment torchrun gives its workers.

Not torchrun (nor `accelerate launch`, which runs torchrun for multi-GPU): its agent starts each rank in a new
session, where the job runner's kill of the worker's process group does not reach it. Started here, the ranks stay
in the worker's process group (the runner's SIGKILL reaches every one), die with the worker (PR_SET_PDEATHSIG: a
kill -9 of the worker or of the daemon leaves no rank behind), inherit its stdout (rank 0's progress lines reach
the runner as the worker's) and its stderr (the job log). Inside, the trainer's accelerate reads that environment:
DDP (NCCL on GPUs, gloo on CPUs) or FSDP as the settings say.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from appliance.children import child_setup
from appliance.training.request import TrainRequest

STOP_GRACE_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_env(rank: int, world: int, port: int, threads: int) -> dict[str, str]:
    return {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world), "GROUP_RANK": "0", "ROLE_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "OMP_NUM_THREADS": str(threads), "TORCHELASTIC_RUN_ID": "appliance"}


def _end(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the ranks still running (each checkpoints if it can), then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(request_file: Path, request: TrainRequest, should_stop: Callable[[], bool],
           poll_s: float = 0.2) -> list[int]:
    """Run every rank of `request` to its end; returns their exit codes (rank order). Once `should_stop()`
    holds, the stop file tells the ranks to checkpoint and stop; a rank that fails ends the others."""
    settings = request.settings
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "appliance.training.rank", str(request_file)],
                              env=rank_env(rank, settings.processes, port, settings.threads),
                              stdin=subprocess.DEVNULL, preexec_fn=child_setup(0))
             for rank in range(settings.processes)]
    try:
        while True:
            if should_stop() and not request.stop_file.exists():
                request.stop_file.touch()
            codes = [proc.poll() for proc in procs]
            if all(code is not None for code in codes):
                return [int(code) for code in codes if code is not None]
            if any(code not in (None, 0, 3) for code in codes):
                _end(procs)
                return [int(proc.returncode) for proc in procs]
            time.sleep(poll_s)
    except BaseException:
        _end(procs)
        raise
