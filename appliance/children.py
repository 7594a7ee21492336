"""How the daemon starts its children (backends, job workers): in their own process group, killed by the
kernel if the daemon dies, niced, and without the daemon's systemd notification environment."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
# A child that inherits these could send READY/WATCHDOG as if it were the daemon.
DAEMON_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_")
# Zero egress: every library the daemon or a child uses is told it is offline and must not phone home. Forced,
# not defaulted: an operator's shell with HF_HUB_OFFLINE=0 must not reach a hub from the appliance.
# The training stack: TRL pings huggingface_hub telemetry at each trainer's start (off under HF_HUB_OFFLINE or
# HF_HUB_DISABLE_TELEMETRY / DISABLE_TELEMETRY), datasets reads HF_DATASETS_OFFLINE, transformers' and
# accelerate's experiment trackers start from these variables when installed (the trainers also say
# report_to="none"), Unsloth sends usage statistics unless UNSLOTH_DISABLE_STATISTICS.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1", "UNSLOTH_DISABLE_STATISTICS": "1", "WANDB_MODE": "disabled", "WANDB_DISABLED": "true",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
}
# Children die first when memory runs out (the daemon, at 0, then restarts them); a process may raise its own.
CHILD_OOM_SCORE_ADJ = 500


def child_setup(niceness: int, umask: int | None = None) -> Callable[[], None]:
    """What a child does between fork and exec; `umask` for a child whose files (a backend's Unix socket, which
    it binds itself) must be its user's alone."""

    def setup() -> None:
        # Runs in the child between fork and exec: if the daemon dies (even by SIGKILL), the kernel kills us.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if niceness:
            os.nice(niceness)
        if umask is not None:
            os.umask(umask)
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(CHILD_OOM_SCORE_ADJ))

    return setup


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment minus what only the daemon may use, plus `extra`, offline whatever it says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DAEMON_ONLY_ENV)}
    env.update(extra or {})
    env.update(OFFLINE_ENV)
    return env


def go_offline() -> None:
    """The daemon's own process: the same offline settings, before any library that reads them is imported."""
    os.environ.update(OFFLINE_ENV)
