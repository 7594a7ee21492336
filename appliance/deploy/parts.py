"""The deployment service's parts, wired once: the rows (intent), history and attached adapters in the store,
the fit planner, the routing table and the reconciler. Internal to `appliance.deploy`: everything outside
reaches deployments through `deploy.service.Deployments` (and the gateway through its read-only view)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.backends.base import Backend
from appliance.deploy.errors import DeploymentConflict
from appliance.deploy.fit import BackendChoice, FitPlanner, ServingPlan
from appliance.deploy.history import AdapterTable, History
from appliance.deploy.models import Deployment, DeploymentRow
from appliance.deploy.policies import ActivePolicy, PolicyStore, compile_policy
from appliance.deploy.reconciler import Reconciler
from appliance.deploy.routing import RoutingTable
from appliance.deploy.store import DeploymentStore
from appliance.hardware.models import HardwareReport
from appliance.profiles.select import Selection
from appliance.registry.registry import ModelRecord, Registry
from appliance.state.store import StateStore


@dataclass(frozen=True)
class PlannedChange:
    """A checked change of a deployment's model: what serves now, and the plan of what would serve after."""

    row: DeploymentRow
    previous: ModelRecord
    plan: ServingPlan

    @property
    def model(self) -> ModelRecord:
        return self.plan.model


class DeploymentParts:
    def __init__(self, store: StateStore, registry: Registry, selection: Selection, hardware: HardwareReport,
                 backends: Mapping[str, Backend], logs_dir: Path, runtime_dir: Path, niceness: int = 0) -> None:
        self.store = store
        self.registry = registry
        self.rows = DeploymentStore(store)
        self.history = History(store)
        self.adapters = AdapterTable(store)
        self.planner = FitPlanner(selection, hardware, backends)
        self.routing = RoutingTable()
        self.reconciler = Reconciler(self.rows, self.adapters, registry, self.planner, dict(backends), self.routing,
                                     logs_dir, runtime_dir, niceness)
        self.switching: set[str] = set()
        self.policies = PolicyStore(store)
        self.active: dict[str, ActivePolicy] = {}  # the policy in force per deployment, compiled (the hot path)

    def load_policies(self) -> None:
        self.active = {name: compile_policy(name, version) for name, version in self.policies.all_current().items()}

    def backend(self, name: str) -> Backend:
        return self.planner.backends[name]

    def plan_change(self, name: str, model_name: str) -> PlannedChange:
        """Serving `model_name` under `name`: the backend (kept when the format is) and the memory check."""
        row = self.rows.get(name)
        previous = self.registry.get(row.model_id)
        model = self.registry.get(model_name)
        if model.format == previous.format:  # same format: the backend it runs on now stays
            choice = BackendChoice(row.backend, row.backend_reason)
            self.planner.choose_backend(model, row.backend)  # still installed, still serves the format
        else:
            choice = self.planner.choose_backend(model, None)
        plan = self.planner.plan(name, model, row.params, choice.backend, choice.reason)
        return PlannedChange(row=row, previous=previous, plan=plan)

    @contextmanager
    def changing(self, name: str) -> Iterator[None]:
        """Held while a change of `name` runs: one at a time, and no delete meanwhile."""
        if name in self.switching:
            raise DeploymentConflict(f"deployment {name!r} is already being switched")
        self.switching.add(name)
        try:
            yield
        finally:
            self.switching.discard(name)

    def get(self, name: str) -> Deployment:
        row = self.rows.get(name)
        served = self.reconciler.live(name)
        policy = self.active.get(name)
        return Deployment(**row.model_dump(), injected_args=served.process.injected if served else {},
                          adapters=[a.name for a in self.adapters.of(name)], switching=name in self.switching,
                          policy_version=policy.version if policy else None)

    def served_names(self) -> set[str]:
        """Every model name apps can send: deployments and the adapters attached to them."""
        return set(self.rows.names()) | self.routing.adapter_names()
