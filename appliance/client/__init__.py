"""The daemon's HTTP API as the CLI and the TUI call it: one catalogue of named calls (`calls.Calls`) served
by a sync client (`DaemonClient`) and an async one (`AsyncDaemonClient`), one error type, one key lookup and
the progress formatting both show.

Imports only the standard library and httpx: clients must not pull in the daemon's internals.
"""

from appliance.client.aio import AsyncDaemonClient
from appliance.client.credentials import ADMIN_KEY_FILE, ENV_KEY, resolve_key
from appliance.client.errors import ApiError, CredentialsError, DaemonUnreachable, error_message
from appliance.client.sync import DaemonClient

__all__ = [
    "ADMIN_KEY_FILE",
    "ENV_KEY",
    "ApiError",
    "AsyncDaemonClient",
    "CredentialsError",
    "DaemonClient",
    "DaemonUnreachable",
    "error_message",
    "resolve_key",
]
