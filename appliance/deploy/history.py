"""What each deployment served and when (for rollback), and the LoRA adapters attached to it (restored on
restart). Both live in the state store; only the deployment service writes history (`deploy.service`)."""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.deploy.models import AttachedAdapter, HistoryEntry
from appliance.state.store import StateStore


class History:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(self, deployment: str, model_id: str, model_name: str, action: str, actor: str,
               detail: dict[str, Any] | None = None) -> HistoryEntry:
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO deployment_history(deployment, model_id, model_name, action, actor, detail, at)"
                " VALUES(?, ?, ?, ?, ?, ?, ?)",
                (deployment, model_id, model_name, action, actor, json.dumps(detail or {}), time.time()))
            entry_id = int(cursor.lastrowid or 0)
        return self.entries(deployment, entry_id=entry_id)[0]

    def entries(self, deployment: str, limit: int = 100, entry_id: int | None = None) -> list[HistoryEntry]:
        """Newest first."""
        rows = self.store.query(
            "SELECT * FROM deployment_history WHERE deployment = ? AND (? IS NULL OR id = ?) ORDER BY id DESC"
            " LIMIT ?", (deployment, entry_id, entry_id, limit))
        return [HistoryEntry(**{**dict(r), "detail": json.loads(r["detail"])}) for r in rows]

    def previous_model(self, deployment: str, current_model_id: str) -> HistoryEntry | None:
        """The version that served before the current one: the newest entry for another model, skipping
        entries of the current model (adapter changes leave the model as it was)."""
        for entry in self.entries(deployment, limit=1000):
            if entry.model_id != current_model_id:
                return entry
        return None

    def forget(self, deployment: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM deployment_history WHERE deployment = ?", (deployment,))


class AdapterTable:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def of(self, deployment: str) -> list[AttachedAdapter]:
        rows = self.store.query(
            "SELECT a.*, m.name AS model FROM deployment_adapters a JOIN models m ON m.id = a.model_id"
            " WHERE a.deployment = ? ORDER BY a.position", (deployment,))
        return [AttachedAdapter(**dict(r)) for r in rows]

    def all(self) -> list[AttachedAdapter]:
        rows = self.store.query("SELECT a.*, m.name AS model FROM deployment_adapters a"
                                " JOIN models m ON m.id = a.model_id ORDER BY a.deployment, a.position")
        return [AttachedAdapter(**dict(r)) for r in rows]

    def replace(self, deployment: str, adapters: list[AttachedAdapter]) -> None:
        """The attached set becomes `adapters`, in their order (positions renumbered from 0)."""
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM deployment_adapters WHERE deployment = ?", (deployment,))
            for position, adapter in enumerate(adapters):
                conn.execute(
                    "INSERT INTO deployment_adapters(name, deployment, model_id, scale, position, attached_at)"
                    " VALUES(?, ?, ?, ?, ?, ?)",
                    (adapter.name, deployment, adapter.model_id, adapter.scale, position, adapter.attached_at))
