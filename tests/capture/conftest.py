"""Shared by the capture tests: a real SQLite state store in a file, real API keys, and captured items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.capture.models import CapturedItem, ChatMessage
from appliance.capture.rows import INSERT_ITEM, item_params
from appliance.security.keys import ApiKey, create_key
from appliance.state import StateStore

T0 = 1_700_000_000.0  # a fixed "now" for items and sweeps


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state" / "state.db").open()
    yield opened
    opened.close()


@pytest.fixture
def keys(store: StateStore) -> dict[str, ApiKey]:
    return {name: create_key(store, name, "inference").key for name in ("app", "other")}


def item(response_id: str, *, key: ApiKey | None = None, deployment: str = "chat", created_at: float = T0,
         question: str | None = None, answer: str | None = None, messages: list[ChatMessage] | None = None,
         **fields: Any) -> CapturedItem:
    """A captured exchange: a system prompt, one user question and the assistant's answer."""
    messages = messages or [ChatMessage(role="system", content="Be brief."),
                            ChatMessage(role="user", content=question or f"Question {response_id}?")]
    return CapturedItem(
        response_id=response_id, deployment=deployment, model_id="m1", model_name="smollm2", created_at=created_at,
        key_id=key.id if key else "k-none", key_name=key.name if key else "nobody", latency_ms=12.5,
        prompt_tokens=20, completion_tokens=7, finish_reason="stop", messages=messages,
        answer=answer or f"Answer {response_id}.", **fields)


def insert(store: StateStore, *items: CapturedItem) -> None:
    """Store items the way the writer does (one transaction)."""
    with store.transaction() as conn:
        conn.executemany(INSERT_ITEM, [item_params(i) for i in items])


def count(store: StateStore, table: str = "captures") -> int:
    row = store.query_one(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])
