"""Keeps the backend processes in line with the store: one supervised process per deployment that should run,
the routing table updated in the same step, and the state each process reports written back to its row."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance.backends.base import Backend
from appliance.backends.process import BackendProcess
from appliance.deploy.errors import DeploymentError
from appliance.deploy.fit import FitPlanner, ServingPlan
from appliance.deploy.history import AdapterTable
from appliance.deploy.models import AttachedAdapter
from appliance.deploy.routing import RoutingTable
from appliance.deploy.store import DeploymentStore
from appliance.errors import ApplianceError
from appliance.registry.registry import Registry
from appliance.state.retry import write_retrying

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A backend process and the plan it was started from (kept for the side-by-side check of a switch)."""

    process: BackendProcess
    plan: ServingPlan


class Reconciler:
    def __init__(self, rows: DeploymentStore, adapters: AdapterTable, registry: Registry, planner: FitPlanner,
                 backends: dict[str, Backend], routing: RoutingTable, logs_dir: Path, runtime_dir: Path,
                 niceness: int = 0) -> None:
        self.rows = rows
        self.adapters = adapters
        self.registry = registry
        self.planner = planner
        self.backends = backends
        self.routing = routing
        self.logs_dir = logs_dir
        self.runtime_dir = runtime_dir
        self.niceness = niceness
        self._served: dict[str, Served] = {}
        self._generation = 0
        self._lock = asyncio.Lock()
        # llama-server (cpp-httplib) drops idle keep-alive connections after 5 s, httpx's default expiry:
        # expire ours first so a request never lands on a connection being closed.
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=512, max_keepalive_connections=64,
                                                            keepalive_expiry=2.0), timeout=httpx.Timeout(None))

    def live(self, name: str) -> Served | None:
        return self._served.get(name)

    def log_path(self, name: str) -> Path:
        """The backend log of deployment `name` (every process that served it, candidates included)."""
        return self.logs_dir / f"deploy-{name}.log"

    async def ensure(self, name: str) -> None:
        """Start or stop the process of `name` to match its row."""
        async with self._lock:
            row = self.rows.get(name)
            served = self._served.get(name)
            if not row.wants_running:
                if served is not None:
                    self._set(name, None)
                    await served.process.stop()
                else:
                    self.rows.record_state(name, "stopped", "stopped by operator", {"restarts": row.restarts})
                return
            if served is not None and not served.process.gave_up:
                return
            model = self.registry.get(row.model_id)
            # No fit check here: what the store says should run comes back (it fitted when it was created).
            plan = self.planner.plan(name, model, row.params, row.backend, row.backend_reason, check=False)
            attached = self.adapters.of(name)
            served = self.new_process(plan, attached)
            self._set(name, served)
            self.routing.set_adapters(name, attached)
            served.process.start()

    def new_process(self, plan: ServingPlan, attached: list[AttachedAdapter], quiet: bool = False) -> Served:
        """A backend process for `plan` (not started), on its own port and socket so a blue/green candidate
        can run beside the live one. A quiet one reports nothing to the store until it takes over."""
        self._generation += 1
        backend = self.backends[plan.backend]
        paths = tuple((a.name, self.registry.get(a.model_id).file) for a in attached)
        # Every backend answers only to the per-process key the gateway adds, on a Unix socket in the private
        # runtime dir (the cheaper hop): llama-server beside its loopback port, vLLM on the socket alone.
        socket_path = self.runtime_dir / f"{plan.deployment}.{self._generation}.sock" \
            if backend.capabilities.unix_socket else None
        # Hex: a urlsafe token may start with '-', which the backend's argparse reads as an option (seen in CI).
        key = secrets.token_hex(24) if backend.capabilities.takes_api_key else None
        process = BackendProcess(backend, plan.launch_spec(_free_port(), socket_path, paths, key),
                                 self.log_path(plan.deployment), self._record_state, self.client, self.niceness,
                                 quiet=quiet)
        return Served(process, plan)

    async def change_adapters(self, name: str, attached: list[AttachedAdapter]) -> None:
        """A new adapter set on a backend that loads LoRA while it serves: unload what left, load what is new,
        then persist and route, in that order, so a name is routed only once its adapter answers.

        Raises:
            DeploymentError: the backend refused an adapter (its reason); the previous set keeps serving.
        """
        served = self._served.get(name)
        current = {a.name: a for a in self.adapters.of(name)}
        wanted = {a.name: a for a in attached}
        if served is not None and served.process.ready:
            process = served.process
            for gone in current.keys() - wanted.keys():
                self.routing.set_adapters(name, [a for a in current.values() if a.name != gone])
                await process.backend.unload_adapter(process.client, process.spec, gone)
            for new in wanted.keys() - current.keys():
                refused = await process.backend.load_adapter(process.client, process.spec, new,
                                                             self.registry.get(wanted[new].model_id).file)
                if refused:
                    raise DeploymentError(f"adapter {new!r} did not load: {refused}; nothing else changed")
        async with self._lock:
            self.adapters.replace(name, attached)
            self.routing.set_adapters(name, self.adapters.of(name))

    async def _restore_adapters(self, name: str) -> None:
        """After a runtime-LoRA backend (re)starts: load the attached set it does not have from its command line."""
        served = self._served.get(name)
        if served is None:
            return
        process, launched = served.process, {adapter for adapter, _ in served.process.spec.adapters}
        for adapter in self.adapters.of(name):
            if adapter.name in launched:
                continue
            refused = await process.backend.load_adapter(process.client, process.spec, adapter.name,
                                                         self.registry.get(adapter.model_id).file)
            if refused:
                log.error("adapter not restored", extra={"deployment": name, "adapter": adapter.name,
                                                          "error": refused})

    async def commit(self, name: str, plan: ServingPlan, attached: list[AttachedAdapter],
                     candidate: Served | None) -> None:
        """The switch itself: row, adapters, the process serving `name` and the routing change together, under
        the lock and with no await between the routing changes (the gateway reads them on the same event loop).
        The process it replaces is left running, quiet, for the caller to drain and stop."""
        async with self._lock:
            self.rows.set_model(name, plan.model.id, plan.backend, plan.reason)
            self.adapters.replace(name, attached)
            if candidate is not None:
                replaced = self._served.get(name)
                if replaced is not None:
                    replaced.process.silence()  # from now on the row describes the candidate
                self._set(name, candidate)
            self.routing.set_adapters(name, self.adapters.of(name))
        if candidate is not None:
            await candidate.process.publish()

    async def restart(self, name: str, reason: str) -> None:
        """Stop what serves `name` (if anything) and start it again from its row."""
        async with self._lock:
            served = self._served.get(name)
            self._set(name, None)
        if served is not None:
            await served.process.stop(reason)
        await self.ensure(name)

    def withdraw(self, name: str) -> None:
        """A deleted deployment: its adapter names are no longer served."""
        self.routing.set_adapters(name, [])

    async def pause_all(self, reason: str) -> list[str]:
        """Stop every running backend without changing what the operator asked for (a training job on a profile
        that cannot serve and train at once). Returns the names to `resume` afterwards."""
        async with self._lock:
            paused = dict(self._served)
            for name in paused:
                self._set(name, None)
        await asyncio.gather(*(s.process.stop(reason) for s in paused.values()), return_exceptions=True)
        for name in paused:
            self.rows.record_state(name, "paused", reason, {"restarts": 0})
        return list(paused)

    async def resume(self, names: list[str]) -> None:
        for name in names:
            try:
                await self.ensure(name)
            except ApplianceError:  # deleted meanwhile: nothing to bring back
                log.warning("deployment not resumed", extra={"deployment": name})

    async def reconcile(self) -> None:
        """Every deployment the store says should run comes back (daemon start)."""
        for name in self.rows.names():
            await self.ensure(name)

    async def shutdown(self) -> None:
        served = list(self._served.values())
        for name in list(self._served):
            self._set(name, None)
        await asyncio.gather(*(s.process.stop("daemon stopping") for s in served), return_exceptions=True)
        await self.client.aclose()

    def _set(self, name: str, served: Served | None) -> None:
        # Supervision and routing change together, always through here.
        if served is None:
            self._served.pop(name, None)
        else:
            self._served[name] = served
        self.routing.set_process(name, None if served is None else served.process)

    async def _record_state(self, name: str, state: str, message: str, info: dict[str, int | None]) -> None:
        # Retried a few times (a locked or full database); if it still fails the process logs it and reports
        # again on its next health check, so supervision never stops over a store write.
        await write_retrying(f"deployment {name} {state}", lambda: self.rows.record_state(name, state, message, info))
        served = self._served.get(name)
        if state == "ready" and served is not None and served.process.backend.capabilities.runtime_lora:
            await self._restore_adapters(name)
