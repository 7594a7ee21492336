"""Identifiers: OpenAI's prefixes for the API's objects; chunk ids derived from what they hold, so an ingestion
run again (a resumed job, a file added twice) writes the same ids and an upsert replaces instead of adding."""

from __future__ import annotations

import hashlib
import secrets
import uuid

CHUNK_NAMESPACE = uuid.UUID("5f0c2f1e-8a53-4c1b-9b51-0d4f3a6e7c21")


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def new_store_id() -> str:
    return f"vs_{secrets.token_hex(12)}"


def new_batch_id() -> str:
    return f"vsfb_{secrets.token_hex(12)}"


def chunk_id(store_id: str, file_id: str, seq: int) -> str:
    """The chunk's id: a UUID (what Qdrant takes as a point id) from the store, the file and the chunk's number."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{store_id}/{file_id}/{seq}"))


def chunk_rowid(chunk: str) -> int:
    """A 63-bit integer for SQLite's rowid (vec0 and FTS5 key rows by integer), from the chunk id."""
    return int.from_bytes(hashlib.blake2b(chunk.encode(), digest_size=8).digest(), "big") >> 1
