"""Each deployment's policy document (guardrails and capture), versioned in the store: every change is a new
version, the newest is in force. Compiled once per version into what the gateway applies per request."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.capture.models import CaptureSettings
from appliance.deploy.errors import DeploymentError, DeploymentNotFound
from appliance.deploy.models import DeploymentPolicy, PolicyVersion, SetPolicy
from appliance.guardrails.engine import Guardrails
from appliance.state.store import StateStore

if TYPE_CHECKING:
    from appliance.deploy.parts import DeploymentParts


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


def apply_policy(parts: DeploymentParts, name: str, body: SetPolicy, actor: str) -> PolicyVersion:
    """Store a new version of `name`'s policy and put it in force (the patterns were checked for catastrophic
    backtracking when `body` was parsed). The audit line names rules and lists, never their content."""
    parts.rows.get(name)
    guard = body.policy.guardrails.guard
    if guard is not None and guard.deployment == name:
        raise DeploymentError("a deployment cannot be its own guard model", param="policy.guardrails.guard")
    if guard is not None and not parts.rows.exists(guard.deployment):
        raise DeploymentNotFound(f"guard model deployment {guard.deployment!r} does not exist",
                                 param="policy.guardrails.guard.deployment")
    version = parts.policies.add(name, body.policy, actor, body.reason or "")
    parts.active[name] = compile_policy(name, version)
    rails = body.policy.guardrails
    parts.store.audit(actor, "deployment.policy", name, {
        "version": version.version, "reason": body.reason, "deny_rules": [r.name for r in rails.deny],
        "redact": rails.redact.model_dump(), "guard": guard.deployment if guard else None,
        "capture": body.policy.capture.enabled, "watch": body.policy.watch})
    return version
