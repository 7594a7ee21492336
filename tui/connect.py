"""Start the control panel against a daemon. The caller says where the daemon and its state directory are;
the key comes from the same lookup as the CLI's (flags, then the environment, then the local admin key file).
Nothing of the daemon's own code is imported: the TUI only talks HTTP."""

from __future__ import annotations

from pathlib import Path

from appliance.client import AsyncDaemonClient, resolve_key


def run(base_url: str, state_dir: Path | None, key: str | None = None, key_file: Path | None = None) -> int:
    """Run the app until the operator quits; returns the exit code.

    Raises:
        CredentialsError: no usable API key.
    """
    from tui.app import ApplianceApp

    ApplianceApp(AsyncDaemonClient(base_url, resolve_key(key, key_file, state_dir))).run()
    return 0
