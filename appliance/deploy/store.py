"""Deployment rows in the state store: the operator's intent (model, backend, parameters, desired state) and
the state the supervisor last reported. The only module that reads or writes the `deployments` table."""

from __future__ import annotations

import time

from appliance.deploy.errors import DeploymentConflict, DeploymentNotFound
from appliance.deploy.models import DeploymentParams, DeploymentRow
from appliance.state.store import StateStore

SELECT = "SELECT d.*, m.name AS model FROM deployments d JOIN models m ON m.id = d.model_id"


class DeploymentStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, name: str) -> DeploymentRow:
        row = self.store.query_one(f"{SELECT} WHERE d.name = ?", (name,))
        if row is None:
            raise DeploymentNotFound(f"no deployment named {name!r}")
        data = dict(row)
        # Parsed here once; everything above the store sees typed parameters.
        return DeploymentRow(**{**data, "params": DeploymentParams.model_validate_json(data["params"])})

    def exists(self, name: str) -> bool:
        return self.store.query_one("SELECT 1 FROM deployments WHERE name = ?", (name,)) is not None

    def names(self) -> list[str]:
        return [str(r["name"]) for r in self.store.query("SELECT name FROM deployments ORDER BY name")]

    def insert(self, name: str, model_id: str, backend: str, reason: str, params: DeploymentParams) -> None:
        now = time.time()
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM deployments WHERE name = ?", (name,)).fetchone():
                raise DeploymentConflict(f"a deployment named {name!r} already exists")
            conn.execute(
                "INSERT INTO deployments(name, model_id, backend, backend_reason, params, desired_state, state,"
                " created_at, updated_at) VALUES(?, ?, ?, ?, ?, 'running', 'pending', ?, ?)",
                (name, model_id, backend, reason, params.model_dump_json(), now, now),
            )

    def set_desired(self, name: str, desired: str) -> None:
        self._update(name, "desired_state = ?", (desired,))

    def set_model(self, name: str, model_id: str, backend: str, reason: str) -> None:
        self._update(name, "model_id = ?, backend = ?, backend_reason = ?", (model_id, backend, reason))

    def record_state(self, name: str, state: str, message: str, info: dict[str, int | None]) -> None:
        self._update(name, "state = ?, state_message = ?, pid = ?, port = ?, restarts = ?",
                     (state, message, info.get("pid"), info.get("port"), info.get("restarts")))

    def delete(self, name: str) -> None:
        with self.store.transaction() as conn:  # its attached adapters go with it (ON DELETE CASCADE)
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))

    def _update(self, name: str, assignments: str, values: tuple[object, ...]) -> None:
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE deployments SET {assignments}, updated_at = ? WHERE name = ?",
                         (*values, time.time(), name))
