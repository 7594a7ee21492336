"""The deployments' front door: create, start, stop, delete, and the checked plan of a change. Routes write
intent through here; the reconciler turns it into processes; the routing table is what the gateway reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.names import NAME
from appliance.backends.base import Backend
from appliance.deploy.errors import DeploymentConflict, DeploymentError
from appliance.deploy.fit import BackendChoice, FitPlanner, ServingPlan
from appliance.deploy.history import AdapterTable, History
from appliance.deploy.models import CreateDeployment, Deployment, DeploymentRow
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

    @property
    def backend(self) -> str:
        return self.plan.backend


class DeploymentManager:
    def __init__(self, store: StateStore, registry: Registry, selection: Selection, hardware: HardwareReport,
                 backends: Mapping[str, Backend], logs_dir: Path, runtime_dir: Path, niceness: int = 0) -> None:
        self.registry = registry
        self.rows = DeploymentStore(store)
        self.history = History(store)
        self.adapters = AdapterTable(store)
        self.planner = FitPlanner(selection, hardware, backends)
        self.routing = RoutingTable()
        self.reconciler = Reconciler(self.rows, self.adapters, registry, self.planner, dict(backends), self.routing,
                                     logs_dir, runtime_dir, niceness)
        self._switching: set[str] = set()

    async def create(self, request: CreateDeployment, actor: str = "operator") -> Deployment:
        model = self.registry.get(request.model)
        name = request.name or model.name
        if not NAME.match(name):
            raise DeploymentError(f"invalid deployment name {name!r}")
        choice = self.planner.choose_backend(model, request.backend)
        self.planner.plan(name, model, request.params, choice.backend, choice.reason)
        self.rows.insert(name, model.id, choice.backend, choice.reason, request.params)
        self.history.record(name, model.id, model.name, "create", actor)
        await self.reconciler.ensure(name)
        return self.get(name)

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
        """Held while a blue/green change of `name` runs: one at a time, and no delete meanwhile."""
        if name in self._switching:
            raise DeploymentConflict(f"deployment {name!r} is already being switched")
        self._switching.add(name)
        try:
            yield
        finally:
            self._switching.discard(name)

    def get(self, name: str) -> Deployment:
        row = self.rows.get(name)
        served = self.reconciler.live(name)
        return Deployment(**row.model_dump(), injected_args=served.process.injected if served else {},
                          adapters=[a.name for a in self.adapters.of(name)], switching=name in self._switching)

    def all(self) -> list[Deployment]:
        return [self.get(name) for name in self.rows.names()]

    def served_names(self) -> set[str]:
        """Every model name apps can send: deployments and the adapters attached to them."""
        return set(self.rows.names()) | self.routing.adapter_names()

    async def set_desired(self, name: str, desired: str) -> Deployment:
        self.rows.get(name)
        self.rows.set_desired(name, desired)
        await self.reconciler.ensure(name)
        return self.get(name)

    async def delete(self, name: str) -> Deployment:
        if name in self._switching:
            raise DeploymentConflict(f"deployment {name!r} is being switched; try again when that is done")
        deployment = await self.set_desired(name, "stopped")
        self.rows.delete(name)
        self.history.forget(name)
        self.reconciler.withdraw(name)
        return deployment

    def log_tail(self, name: str, lines: int = 200) -> str:
        self.rows.get(name)
        path = self.reconciler.log_path(name)
        if not path.exists():
            return ""
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
