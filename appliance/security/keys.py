"""Scoped API keys. The token is shown once; only its SHA-256 is stored (tokens carry 256 random bits, so a
fast hash is enough: nothing to brute-force)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from appliance.errors import ApplianceError
from appliance.security.last_use import touch
from appliance.state.durable import write_atomic
from appliance.state.store import StateStore

Scope = Literal["inference", "admin"]
TOKEN_PREFIX = "slm"
LOCAL_ADMIN_KEY_NAME = "local-admin"


class ApiKeyError(ApplianceError):
    """A key operation was refused (invalid or duplicate name, unknown key)."""


class KeyConflict(ApiKeyError):
    status, code = 409, "key_exists"


class KeyFileRefused(ApiKeyError):
    status, code = 500, "key_file_refused"


class KeyNotFound(ApiKeyError):
    status, code = 404, "key_not_found"


class ApiKey(BaseModel):
    id: str
    name: str
    scope: Scope
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None
    daily_token_quota: int | None = None  # prompt + completion tokens per UTC day; None: unlimited


class CreatedKey(BaseModel):
    key: ApiKey
    token: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_COLUMNS = "id, name, scope, created_at, revoked_at, last_used_at, daily_token_quota"


def create_key(store: StateStore, name: str, scope: Scope, daily_token_quota: int | None = None) -> CreatedKey:
    """Create a key; the returned token is the only copy of the secret."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ApiKeyError("key name must be 1-64 characters of letters, digits, '-', '_' or '.'")
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = f"{TOKEN_PREFIX}_{key_id}_{secret}"
    now = time.time()
    with store.transaction() as conn:
        if conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
            raise KeyConflict(f"a key named {name!r} already exists", param="name")
        conn.execute(
            "INSERT INTO api_keys(id, name, scope, token_hash, created_at, daily_token_quota) VALUES(?, ?, ?, ?, ?, ?)",
            (key_id, name, scope, _hash(secret), now, daily_token_quota),
        )
    return CreatedKey(key=ApiKey(id=key_id, name=name, scope=scope, created_at=now,
                                 daily_token_quota=daily_token_quota), token=token)


def set_quota(store: StateStore, name: str, daily_token_quota: int | None) -> ApiKey:
    """Set (or, with None, lift) the daily token quota of the active key `name`."""
    with store.transaction() as conn:
        row = conn.execute("SELECT id FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
        if row is None:
            raise KeyNotFound(f"no active key named {name!r}")
        conn.execute("UPDATE api_keys SET daily_token_quota = ? WHERE id = ?", (daily_token_quota, row["id"]))
    return next(k for k in list_keys(store) if k.id == row["id"])


def list_keys(store: StateStore) -> list[ApiKey]:
    rows = store.query(f"SELECT {_COLUMNS} FROM api_keys ORDER BY name")
    return [ApiKey(**dict(r)) for r in rows]


def revoke_key(store: StateStore, name_or_id: str) -> ApiKey:
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT id FROM api_keys WHERE (name = ? OR id = ?) AND revoked_at IS NULL", (name_or_id, name_or_id)
        ).fetchone()
        if row is None:
            raise KeyNotFound(f"no active key named {name_or_id!r}")
        conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (time.time(), row["id"]))
    return next(k for k in list_keys(store) if k.id == row["id"])


def verify_token(store: StateStore, token: str) -> ApiKey | None:
    """The active key a bearer token belongs to, or None. A match is a use of the key: its `last_used_at` is
    written, at most once a minute (`last_use.touch`; a failed write is logged, never raised)."""
    key = _lookup(store, token)
    if key is None:
        return None
    return key.model_copy(update={"last_used_at": touch(store, key.id, key.name, key.last_used_at, time.time())})


def _lookup(store: StateStore, token: str) -> ApiKey | None:
    """The active key a bearer token belongs to, or None; reads only."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    row = store.query_one(
        f"SELECT {_COLUMNS}, token_hash FROM api_keys WHERE id = ?",
        (parts[1],),
    )
    if row is None or row["revoked_at"] is not None:
        return None
    if not hmac.compare_digest(row["token_hash"], _hash(parts[2])):
        return None
    data = dict(row)
    data.pop("token_hash")
    return ApiKey(**data)


def _read_key_file(path: Path) -> str | None:
    """The token in `path`, None when there is no file. A symlink or anything but a regular file is refused:
    following one could hand the admin key to whoever controls where it points."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise KeyFileRefused(f"{path}: {kind}; refusing to read or write the admin key through it (remove it)")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as fh:
        return fh.read().strip()


def ensure_local_admin_key(store: StateStore, path: Path) -> None:
    """On first start, create an admin key for local clients (CLI, TUI) in a 0600 file beside the state.

    The file is written to a new temp file (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600), fsynced and renamed over
    the path (a rename replaces a name, it never writes through a symlink).

    Raises:
        KeyFileRefused: the path is a symlink or not a regular file.
    """
    token = _read_key_file(path)
    if token is not None and _lookup(store, token) is not None:  # the daemon's own check is not a use
        return
    with store.transaction() as conn:
        conn.execute("DELETE FROM api_keys WHERE name = ?", (LOCAL_ADMIN_KEY_NAME,))
    created = create_key(store, LOCAL_ADMIN_KEY_NAME, "admin")
    write_atomic(path, (created.token + "\n").encode(), mode=0o600)
