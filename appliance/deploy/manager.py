"""Creates, starts, stops and restores deployments. Routes write intent; this reconciles processes to it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from appliance.backends.base import Backend, LaunchSpec
from appliance.backends.process import BackendProcess
from appliance.deploy.history import AdapterTable, AttachedAdapter, History
from appliance.deploy.models import CreateDeployment, Deployment, DeploymentParams
from appliance.hardware.models import HardwareReport
from appliance.plan.memory import SERVE_WEIGHT_BYTES, MemoryEstimate, gpu_claim, plan_beside_live, plan_serving
from appliance.plan.shapes import ModelShape, shape_for
from appliance.profiles.select import Selection
from appliance.registry.registry import ModelRecord, Registry
from appliance.state.store import StateStore

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
FORMAT_BACKENDS = {"gguf": "llamacpp", "hf": "vllm"}


class DeploymentError(Exception):
    """Refused: the message says why (and, for memory, with the numbers)."""


class DeploymentNotFound(DeploymentError):
    pass


class DeploymentConflict(DeploymentError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shape_of(model: ModelRecord) -> ModelShape:
    """The model's real shape when its metadata has it, else the nearest reference shape."""
    meta, params = model.metadata, float(model.params or 1e8)
    base = shape_for(params)
    try:
        return ModelShape(name=model.name, params=params, layers=meta["layers"], hidden=meta["hidden"],
                          intermediate=meta.get("intermediate") or base.intermediate, heads=meta["heads"],
                          kv_heads=meta.get("kv_heads") or meta["heads"], vocab=meta.get("vocab") or base.vocab)
    except (KeyError, TypeError, ValueError):
        return base


@dataclass(frozen=True)
class PlannedChange:
    """A checked change of a deployment's model: what serves now and what would serve after."""

    row: dict[str, object]
    previous: ModelRecord
    model: ModelRecord
    backend: str
    params: DeploymentParams

    @property
    def wants_running(self) -> bool:
        return self.row["desired_state"] == "running"


class DeploymentManager:
    def __init__(self, store: StateStore, registry: Registry, selection: Selection, hardware: HardwareReport,
                 backends: Mapping[str, Backend], logs_dir: Path, niceness: int = 0,
                 runtime_dir: Path | None = None) -> None:
        self.niceness = niceness
        self.runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix="slm-appliance-"))
        self.store = store
        self.registry = registry
        self.selection = selection
        self.hardware = hardware
        self.backends = backends
        self.logs_dir = logs_dir
        self.processes: dict[str, BackendProcess] = {}
        self.history = History(store)
        self.adapters = AdapterTable(store)
        # Served adapter name → (deployment, adapter id in its backend, scale), for the gateway.
        self.adapter_routes: dict[str, tuple[str, int, float]] = {}
        self.switching: set[str] = set()
        self._generation = 0
        # llama-server (cpp-httplib) drops idle keep-alive connections after 5 s, httpx's default expiry:
        # expire ours first so a request never lands on a connection being closed.
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=512, max_keepalive_connections=64,
                                                            keepalive_expiry=2.0), timeout=httpx.Timeout(None))
        self._lock = asyncio.Lock()

    # -- intent ---------------------------------------------------------------------------------------
    def _choose_backend(self, model: ModelRecord, requested: str | None) -> str:
        if model.kind == "adapter-gguf":
            raise DeploymentError(f"{model.name!r} is a LoRA adapter: attach it to a deployment of its base "
                                  f"({model.metadata.get('serve_over', 'its F16 base')}) instead")
        wanted = requested or FORMAT_BACKENDS.get(model.format)
        if wanted is None:
            raise DeploymentError(f"model {model.name!r} ({model.format}) cannot be served directly; export it first")
        if wanted not in self.backends:
            raise DeploymentError(f"backend {wanted!r} is not available here (have: {', '.join(self.backends)})")
        if model.format not in self.backends[wanted].capabilities.formats:
            raise DeploymentError(f"backend {wanted} cannot serve {model.format} models")
        return wanted

    def launch_spec(self, name: str, model: ModelRecord, params: DeploymentParams, port: int) -> LaunchSpec:
        serving = self.selection.profile.serving
        return LaunchSpec(
            deployment=name, model_path=model.file, port=port,
            context_length=params.context_length or serving.context_length,
            parallel_slots=params.parallel_slots or serving.parallel_slots,
            threads=params.threads if params.threads is not None
            else (serving.threads or self.hardware.cpu.physical_cores),
            gpu_layers=params.gpu_layers if params.gpu_layers is not None else serving.gpu_layers,
            gpu_memory_utilization=params.gpu_memory_utilization or serving.gpu_memory_utilization,
            max_model_len=params.max_model_len or serving.max_model_len,
            max_loras=params.max_loras if params.max_loras is not None else serving.max_loras,
            tensor_parallel_size=self.selection.tensor_parallel_size, quantization=serving.quantization,
            extra_args=tuple(params.extra_args),
        )

    def _serving_estimate(self, model: ModelRecord, spec: LaunchSpec, backend: str) -> MemoryEstimate:
        profile = self.selection.profile
        serving = profile.serving.model_copy(update={
            "backend": backend, "context_length": spec.context_length, "parallel_slots": spec.parallel_slots,
            "gpu_layers": spec.gpu_layers, "max_model_len": spec.max_model_len,
            "gpu_memory_utilization": spec.gpu_memory_utilization})
        quant = model.quantization or ""
        variant = quant if quant in SERVE_WEIGHT_BYTES else ("none" if model.format == "hf" else "F16")
        return plan_serving(shape_of(model), profile.model_copy(update={"serving": serving}), self.hardware,
                            variant, self.selection.tensor_parallel_size)

    def _check_fits(self, model: ModelRecord, spec: LaunchSpec, backend: str) -> None:
        estimate = self._serving_estimate(model, spec, backend)
        if not estimate.fits:
            raise DeploymentError(f"refused: {estimate.message}")

    def _gpu_claim(self, model: ModelRecord, spec: LaunchSpec, backend: str) -> int:
        if backend != "vllm" and spec.gpu_layers == 0:
            return 0  # llama.cpp on the CPU holds nothing on the GPU
        return gpu_claim(self._serving_estimate(model, spec, backend), backend)

    def check_beside_live(self, change: PlannedChange, live: BackendProcess) -> None:
        """Refuse, with the numbers, a blue/green candidate that cannot start on the GPUs beside the live backend
        (vLLM would fail at start-up for want of free memory): better now than after a failed start."""
        if not self.hardware.compute_units():
            return
        live_backend = str(change.row["backend"])
        candidate_spec = self.launch_spec(live.spec.deployment, change.model, change.params, 0)
        live_claim = self._gpu_claim(change.previous, live.spec, live_backend)
        candidate_claim = self._gpu_claim(change.model, candidate_spec, change.backend)
        if not live_claim or not candidate_claim:
            return
        estimate = plan_beside_live(live_claim, f"{live_backend}, {change.previous.name}", candidate_claim,
                                    f"{change.backend}, {change.model.name}", self.hardware)
        if not estimate.fits:
            raise DeploymentError(
                f"refused: a blue/green switch runs the candidate beside the live backend; {estimate.message}. "
                "Nothing changed. Make room for both (vLLM: a lower gpu_memory_utilization, the share of each GPU "
                "it reserves; llama.cpp: fewer context_length, parallel_slots or gpu_layers), or stop the "
                "deployment first and switch it while stopped (no blue/green, no eval gate)")

    async def create(self, request: CreateDeployment, actor: str = "operator") -> Deployment:
        model = self.registry.get(request.model)
        name = request.name or model.name
        if not NAME.match(name):
            raise DeploymentError(f"invalid deployment name {name!r}")
        backend = self._choose_backend(model, request.backend)
        self._check_fits(model, self.launch_spec(name, model, request.params, 0), backend)
        now = time.time()
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM deployments WHERE name = ?", (name,)).fetchone():
                raise DeploymentConflict(f"a deployment named {name!r} already exists")
            conn.execute(
                "INSERT INTO deployments(name, model_id, backend, params, desired_state, state, created_at, updated_at)"
                " VALUES(?, ?, ?, ?, 'running', 'pending', ?, ?)",
                (name, model.id, backend, request.params.model_dump_json(), now, now),
            )
        self.history.record(name, model.id, model.name, "create", actor)
        await self.ensure(name)
        return self.get(name)

    def plan_change(self, name: str, model_name: str) -> PlannedChange:
        """Serving `model_name` under `name`: the backend (kept when the format is) and the memory check."""
        row = self.row(name)
        previous = self.registry.get(str(row["model_id"]))
        model = self.registry.get(model_name)
        backend = self._choose_backend(model, str(row["backend"]) if model.format == previous.format else None)
        params = DeploymentParams(**json.loads(str(row["params"])))
        self._check_fits(model, self.launch_spec(name, model, params, 0), backend)
        return PlannedChange(row=row, previous=previous, model=model, backend=backend, params=params)

    def row(self, name: str) -> dict[str, object]:
        row = self.store.query_one(
            "SELECT d.*, m.name AS model FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = ?",
            (name,))
        if row is None:
            raise DeploymentNotFound(f"no deployment named {name!r}")
        return dict(row)

    def get(self, name: str) -> Deployment:
        row = self.row(name)
        process = self.processes.get(name)
        return Deployment(**{**row, "params": DeploymentParams(**json.loads(str(row["params"]))),
                             "injected_args": process.injected if process else {},
                             "adapters": [a.name for a in self.adapters.of(name)],
                             "switching": name in self.switching})  # type: ignore[arg-type]

    def all(self) -> list[Deployment]:
        return [self.get(r["name"]) for r in self.store.query("SELECT name FROM deployments ORDER BY name")]

    async def set_desired(self, name: str, desired: str) -> Deployment:
        self.row(name)
        with self.store.transaction() as conn:
            conn.execute("UPDATE deployments SET desired_state = ?, updated_at = ? WHERE name = ?",
                         (desired, time.time(), name))
        await self.ensure(name)
        return self.get(name)

    async def delete(self, name: str) -> Deployment:
        if name in self.switching:
            raise DeploymentConflict(f"deployment {name!r} is being switched; try again when that is done")
        deployment = await self.set_desired(name, "stopped")
        with self.store.transaction() as conn:  # its attached adapters go with it (ON DELETE CASCADE)
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))
        self.history.forget(name)
        self.set_routes(name, [])
        return deployment

    # -- reconciliation -------------------------------------------------------------------------------
    async def _record_state(self, name: str, state: str, message: str, info: dict[str, int | None]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE deployments SET state = ?, state_message = ?, pid = ?, port = ?, restarts = ?, updated_at = ?"
                " WHERE name = ?",
                (state, message, info.get("pid"), info.get("port"), info.get("restarts"), time.time(), name),
            )

    async def ensure(self, name: str) -> None:
        async with self._lock:
            row = self.row(name)
            process = self.processes.get(name)
            if row["desired_state"] == "stopped":
                if process is not None:
                    del self.processes[name]
                    await process.stop()
                else:
                    restarts = int(str(row["restarts"]))
                    await self._record_state(name, "stopped", "stopped by operator", {"restarts": restarts})
                return
            if process is not None:
                return
            model = self.registry.get(str(row["model_id"]))
            params = DeploymentParams(**json.loads(str(row["params"])))
            attached = self.adapters.of(name)
            process = self.new_process(name, str(row["backend"]), model, params, attached)
            self.processes[name] = process
            self.set_routes(name, attached)
            process.start()

    def new_process(self, name: str, backend: str, model: ModelRecord, params: DeploymentParams,
                    attached: list[AttachedAdapter], quiet: bool = False) -> BackendProcess:
        """A backend process for `name` (not started), on its own port and socket so a blue/green candidate
        can run beside the live one."""
        self._generation += 1
        paths = tuple((a.name, self.registry.get(a.model_id).file) for a in attached)
        spec = replace(self.launch_spec(name, model, params, _free_port()), adapters=paths,
                       unix_socket=self.runtime_dir / f"{name}.{self._generation}.sock")
        process = BackendProcess(self.backends[backend], spec, self.log_path(name),
                                 self._record_state, self.client, self.niceness)
        process.quiet = quiet
        return process

    async def commit_change(self, name: str, model_id: str, backend: str, attached: list[AttachedAdapter],
                            candidate: BackendProcess | None) -> None:
        """The switch itself: store row, adapters, the process serving `name` and the gateway's routing change
        together, under the lock and with no await between the routing changes (the gateway reads them on the
        same event loop). The process it replaces is left running (quiet) for its caller to drain and stop."""
        async with self._lock:
            with self.store.transaction() as conn:
                conn.execute("UPDATE deployments SET model_id = ?, backend = ?, updated_at = ? WHERE name = ?",
                             (model_id, backend, time.time(), name))
            self.adapters.replace(name, attached)
            attached = self.adapters.of(name)
            if candidate is not None:
                replaced = self.processes.get(name)
                if replaced is not None:
                    replaced.quiet = True  # from now on the row describes the candidate
                self.processes[name] = candidate
            self.set_routes(name, attached)
        if candidate is not None:
            await candidate.publish()

    def set_routes(self, name: str, attached: list[AttachedAdapter]) -> None:
        """The gateway's adapter names for deployment `name` become `attached` (ids follow their order)."""
        self.adapter_routes = {k: v for k, v in self.adapter_routes.items() if v[0] != name}
        for position, adapter in enumerate(attached):
            self.adapter_routes[adapter.name] = (name, position, adapter.scale)

    def route(self, served_name: str) -> tuple[BackendProcess, dict[str, object] | None] | None:
        """The ready process behind a served model name, and for an adapter name the fields that select it."""
        process = self.ready_endpoint(served_name)
        if process is not None:
            # Every adapter's scale is sent explicitly: llama-server applies loaded adapters to a request that
            # names none (seen with --lora-init-without-apply too), and the base name must stay the base model.
            if not process.spec.adapters:
                return process, None
            return process, {"lora": [{"id": i, "scale": 0.0} for i in range(len(process.spec.adapters))]}
        target = self.adapter_routes.get(served_name)
        if target is None:
            return None
        process = self.ready_endpoint(target[0])
        if process is None:
            return None
        scales = [{"id": i, "scale": target[2] if i == target[1] else 0.0} for i in range(len(process.spec.adapters))]
        return process, {"model": target[0], "lora": scales}

    async def pause_all(self, reason: str) -> list[str]:
        """Stop every running backend without changing what the operator asked for (a training job on a profile
        that cannot serve and train at once). Returns the names to `resume` afterwards."""
        async with self._lock:
            paused, self.processes = dict(self.processes), {}
        await asyncio.gather(*(p.stop(reason) for p in paused.values()), return_exceptions=True)
        for name in paused:
            await self._record_state(name, "paused", reason, {"restarts": 0})
        return list(paused)

    async def resume(self, names: list[str]) -> None:
        for name in names:
            try:
                await self.ensure(name)
            except Exception:  # deleted meanwhile: nothing to bring back
                log.warning("deployment not resumed", extra={"deployment": name})

    async def reconcile(self) -> None:
        """Bring processes in line with the store (daemon start: every deployment that should run comes back)."""
        for row in self.store.query("SELECT name FROM deployments ORDER BY name"):
            await self.ensure(str(row["name"]))

    async def shutdown(self) -> None:
        processes, self.processes = list(self.processes.values()), {}
        await asyncio.gather(*(p.stop("daemon stopping") for p in processes), return_exceptions=True)
        await self.client.aclose()

    def ready_endpoint(self, name: str) -> BackendProcess | None:
        process = self.processes.get(name)
        return process if process is not None and process.ready else None

    def log_path(self, name: str) -> Path:
        """The backend log of deployment `name` (every process that served it, candidates included)."""
        return self.logs_dir / f"deploy-{name}.log"

    def log_tail(self, name: str, lines: int = 200) -> str:
        self.row(name)
        path = self.log_path(name)
        if not path.exists():
            return ""
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
