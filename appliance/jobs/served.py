"""What a served model name stands for, read from the store at submit time: a deployment, or an adapter attached
to one (its served name). The pre-flights of the kinds that call the gateway (distillation's teacher, semantic
dedup's embeddings) check their names here; jobs sit below `deploy`, so this reads the two tables (read-only, as
the registry's in-use check does) instead of asking the deployment service."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.errors import BadRequest, Conflict, NotFound
from appliance.state.store import StateStore

if TYPE_CHECKING:
    from appliance.core import Appliance

_DEPLOYMENT = ("SELECT d.name, d.params, d.desired_state, d.state, m.name AS model, m.id AS model_id "
               "FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = ?")
Row = sqlite3.Row
_ADAPTER = ("SELECT a.deployment, m.name AS adapter, m.id AS adapter_id FROM deployment_adapters a "
            "JOIN models m ON m.id = a.model_id WHERE a.name = ?")


@dataclass(frozen=True)
class Served:
    name: str  # the served name asked for
    deployment: str
    model: str  # registry name of the deployment's model (the base, for an adapter)
    model_id: str
    adapter: str | None  # registry name of the adapter, when the name is an attached adapter's
    adapter_id: str | None
    embeddings: bool
    parallel_slots: int
    running: bool  # the operator wants it running (it may still be starting)

    def lineage(self) -> dict[str, str | None]:
        return {"served_name": self.name, "deployment": self.deployment, "model": self.model,
                "model_id": self.model_id, "adapter": self.adapter, "adapter_id": self.adapter_id}


def _rows(store: StateStore, name: str) -> tuple[Row, Row | None] | None:
    """The deployment row behind a served name, and the adapter's when the name is an attached adapter's."""
    row = store.query_one(_DEPLOYMENT, (name,))
    if row is not None:
        return row, None
    adapter = store.query_one(_ADAPTER, (name,))
    row = None if adapter is None else store.query_one(_DEPLOYMENT, (adapter["deployment"],))
    return None if row is None else (row, adapter)


def find_served(appliance: Appliance, name: str) -> Served | None:
    """The deployment or attached adapter served as `name`; None when nothing is."""
    found = _rows(appliance.store, name)
    if found is None:
        return None
    row, adapter = found
    params = json.loads(row["params"] or "{}")
    serving = appliance.selection.profile.serving
    embeddings = params.get("embeddings")
    return Served(name=name, deployment=row["name"], model=row["model"], model_id=row["model_id"],
                  adapter=adapter["adapter"] if adapter else None,
                  adapter_id=adapter["adapter_id"] if adapter else None,
                  embeddings=bool(serving.embeddings if embeddings is None else embeddings),
                  parallel_slots=int(params.get("parallel_slots") or serving.parallel_slots),
                  running=row["desired_state"] == "running")


def lineage_now(store: StateStore, name: str) -> dict[str, str | None] | None:
    """What serves `name` now (a job's worker notes it as it starts: a switch since submit shows)."""
    found = _rows(store, name)
    if found is None:
        return None
    row, adapter = found
    return {"served_name": name, "deployment": row["name"], "model": row["model"], "model_id": row["model_id"],
            "adapter": adapter["adapter"] if adapter else None,
            "adapter_id": adapter["adapter_id"] if adapter else None}


def served(appliance: Appliance, name: str, param: str, *, embeddings: bool) -> Served:
    """The deployment served as `name`, of the kind the job needs (an embeddings one or a chat one), wanted
    running. Raises NotFound (404), BadRequest (400) or Conflict (409) naming `param`."""
    found = find_served(appliance, name)
    if found is None:
        raise NotFound(f"no deployment or attached adapter is served as {name!r}", param=param)
    if found.embeddings != embeddings:
        what = "an embeddings deployment" if found.embeddings else "a chat deployment"
        need = "one created with embeddings: true" if embeddings else "a chat one (or an adapter attached to one)"
        raise BadRequest(f"{name!r} is {what}; this job needs {need}", param=param)
    if not found.running:
        raise Conflict(f"deployment {found.deployment!r} is stopped; start it first", param=param)
    return found
