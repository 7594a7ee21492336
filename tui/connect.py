"""Where the daemon is and which key to use: flags first, then the environment, then the config and the
local admin key file — the same places the CLI's API commands look."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.config import ApplianceConfig


class ConnectError(Exception):
    """No usable key; the message says where it looked."""


def resolve(config: ApplianceConfig, url: str | None = None, key: str | None = None,
            key_file: Path | None = None) -> tuple[str, str]:
    """Returns (base URL, token)."""
    base_url = url or config.base_url()
    # An explicit --key-file beats the environment; the state directory's key file is the last resort.
    token = key or (None if key_file else os.environ.get("SLM_API_KEY"))
    if token is None:
        path = key_file or config.resolved_state_dir() / "admin.key"
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConnectError(f"no API key: pass --key or --key-file, or set SLM_API_KEY "
                               f"(cannot read {path}: {exc.strerror})") from exc
    if not token:
        raise ConnectError("the API key is empty")
    return base_url, token


def run(config: ApplianceConfig, url: str | None = None, key: str | None = None,
        key_file: Path | None = None) -> int:
    """Start the control panel; returns the exit code."""
    from tui.app import ApplianceApp
    from tui.client import ApiClient

    base_url, token = resolve(config, url, key, key_file)
    ApplianceApp(ApiClient(base_url, token)).run()
    return 0
