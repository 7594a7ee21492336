"""How the daemon starts its children (backends, job workers): in their own process group, killed by the
kernel if the daemon dies, niced, and without the daemon's systemd notification environment."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
# A child that inherits these could send READY/WATCHDOG as if it were the daemon.
DAEMON_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_")


def child_setup(niceness: int) -> Callable[[], None]:
    def setup() -> None:
        # Runs in the child between fork and exec: if the daemon dies (even by SIGKILL), the kernel kills us.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if niceness:
            os.nice(niceness)

    return setup


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment minus what only the daemon may use, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DAEMON_ONLY_ENV)}
    env.update(extra or {})
    return env
