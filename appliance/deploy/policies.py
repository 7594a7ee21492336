"""Each deployment's policy document (guardrails and capture), versioned in the store: every change is a new
version, the newest is in force. Compiled once per version into what the gateway applies per request."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from appliance.capture.models import CaptureSettings
from appliance.deploy.models import DeploymentPolicy, PolicyVersion
from appliance.guardrails.engine import Guardrails
from appliance.state.store import StateStore


@dataclass(frozen=True)
class ActivePolicy:
    """A deployment's policy as the gateway applies it: compiled guardrails (None when the policy checks
    nothing), capture settings, and the version they came from."""

    deployment: str
    version: int
    policy: DeploymentPolicy
    rails: Guardrails | None

    @property
    def capture(self) -> CaptureSettings:
        return self.policy.capture


def compile_policy(deployment: str, version: PolicyVersion) -> ActivePolicy:
    guardrails = version.policy.guardrails
    # Patterns were probed for catastrophic backtracking when the policy was set; not again at each start.
    rails = Guardrails(guardrails, timing=False)
    idle = not any(rails.active(scope) for scope in ("input", "output", "capture")) and guardrails.guard is None \
        and not guardrails.limits.model_dump(exclude_none=True)
    return ActivePolicy(deployment, version.version, version.policy, None if idle else rails)


class PolicyStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add(self, deployment: str, policy: DeploymentPolicy, actor: str, reason: str = "") -> PolicyVersion:
        with self.store.transaction() as conn:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM deployment_policies WHERE deployment = ?",
                               (deployment,)).fetchone()
            version = int(row[0]) + 1
            conn.execute("INSERT INTO deployment_policies(deployment, version, policy, actor, reason, created_at)"
                         " VALUES(?, ?, ?, ?, ?, ?)",
                         (deployment, version, policy.model_dump_json(), actor, reason, time.time()))
        return self.versions(deployment, limit=1)[0]

    def versions(self, deployment: str, limit: int = 100) -> list[PolicyVersion]:
        """Newest first."""
        rows = self.store.query("SELECT * FROM deployment_policies WHERE deployment = ? ORDER BY version DESC"
                                " LIMIT ?", (deployment, limit))
        return [PolicyVersion(**{**dict(r), "policy": json.loads(r["policy"])}) for r in rows]

    def current(self, deployment: str) -> PolicyVersion | None:
        found = self.versions(deployment, limit=1)
        return found[0] if found else None

    def all_current(self) -> dict[str, PolicyVersion]:
        rows = self.store.query(
            "SELECT p.* FROM deployment_policies p JOIN (SELECT deployment, MAX(version) AS v FROM"
            " deployment_policies GROUP BY deployment) n ON n.deployment = p.deployment AND n.v = p.version")
        return {str(r["deployment"]): PolicyVersion(**{**dict(r), "policy": json.loads(r["policy"])}) for r in rows}
