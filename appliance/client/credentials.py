"""Which API key the CLI and the TUI use: one lookup, in one order, with an error that says where it looked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from appliance.client.errors import CredentialsError

ADMIN_KEY_FILE: Final = "admin.key"  # written by the daemon into its state directory, mode 0600
ENV_KEY: Final = "SLM_API_KEY"


def resolve_key(key: str | None = None, key_file: Path | None = None, state_dir: Path | None = None) -> str:
    """The API key, from the first of: `key`, `key_file`, $SLM_API_KEY, `<state_dir>/admin.key`.

    Raises:
        CredentialsError: the chosen source is empty, or no source gives a key (the message names the file
            it could not read).
    """
    if key is not None:
        return _non_empty(key, "--key")
    env = os.environ.get(ENV_KEY)
    # An explicit key file beats the environment; the state directory's key file is the last resort.
    if key_file is None and env is not None:
        return _non_empty(env, f"${ENV_KEY}")
    path = key_file or (state_dir / ADMIN_KEY_FILE if state_dir is not None else None)
    if path is None:
        raise CredentialsError("No API key", f"no API key: pass --key or --key-file, or set {ENV_KEY}")
    try:
        text = path.read_text()
    except OSError as exc:
        # No admin key in the state directory: most likely no daemon ever started there.
        hint = "; the daemon writes it when it starts" if key_file is None and isinstance(
            exc, FileNotFoundError) else ""
        raise CredentialsError("No API key", f"no API key: pass --key or --key-file, or set {ENV_KEY} "
                                             f"(cannot read {path}: {exc.strerror}{hint})") from exc
    return _non_empty(text, str(path))


def _non_empty(token: str, source: str) -> str:
    token = token.strip()
    if not token:
        raise CredentialsError("No API key", f"the API key from {source} is empty")
    return token
