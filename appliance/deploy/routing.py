"""Served model names → the backend process that answers them: what the gateway reads on every request.

Only the reconciler writes it (`set_process`, `set_adapters`), in the same event-loop step as the change it
reflects; the gateway reads it through `route` and `deployment_of` and never sees the store.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from appliance.backends.process import BackendProcess
from appliance.deploy.models import AttachedAdapter


class AdapterRoute(NamedTuple):
    deployment: str
    position: int  # the adapter's id in the backend: its order on the command line
    scale: float


class Route(NamedTuple):
    process: BackendProcess
    # Fields merged into the request body: which deployment, which adapters at which scale. None: as sent.
    selector: dict[str, Any] | None


class RoutingTable:
    def __init__(self) -> None:
        self._processes: dict[str, BackendProcess] = {}
        self._adapters: dict[str, AdapterRoute] = {}

    # -- written by the reconciler --------------------------------------------------------------------
    def set_process(self, deployment: str, process: BackendProcess | None) -> None:
        if process is None:
            self._processes.pop(deployment, None)
        else:
            self._processes[deployment] = process

    def set_adapters(self, deployment: str, attached: list[AttachedAdapter]) -> None:
        """The adapter names served over `deployment` become `attached` (ids follow their order)."""
        self._adapters = {k: v for k, v in self._adapters.items() if v.deployment != deployment}
        for position, adapter in enumerate(attached):
            self._adapters[adapter.name] = AdapterRoute(deployment, position, adapter.scale)

    # -- read by the gateway --------------------------------------------------------------------------
    def route(self, served_name: str) -> Route | None:
        """The ready process behind a served name, and for an adapter's name the fields that select it (each
        backend says how a request picks an adapter: `adapter_selector`)."""
        process = self._ready(served_name)
        if process is not None:
            return Route(process, process.backend.adapter_selector(process.spec, None, 0.0))
        target = self._adapters.get(served_name)
        if target is None:
            return None
        process = self._ready(target.deployment)
        if process is None:
            return None
        return Route(process, process.backend.adapter_selector(process.spec, target.position, target.scale))

    def deployment_of(self, served_name: str) -> str:
        """The deployment a served name belongs to: an adapter's parent, else the name itself."""
        target = self._adapters.get(served_name)
        return target.deployment if target is not None else served_name

    def adapter_names(self) -> set[str]:
        return set(self._adapters)

    def ready_processes(self) -> dict[str, BackendProcess]:
        """Deployment name → its process, for those serving now (a copy: the caller cannot change routing)."""
        return {name: p for name, p in self._processes.items() if p.ready}

    def restarts(self) -> dict[str, int]:
        return {name: process.restarts for name, process in self._processes.items()}

    def _ready(self, deployment: str) -> BackendProcess | None:
        process = self._processes.get(deployment)
        return process if process is not None and process.ready else None
