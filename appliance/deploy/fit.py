"""The planner step of a deployment: which backend serves a model, its serving settings resolved once from the
profile and the deployment's overrides, and whether that fits this box (alone, or beside a live version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from appliance.backends.base import Backend, LaunchSpec, refused_extra_args
from appliance.deploy.errors import DeploymentError
from appliance.deploy.models import DeploymentParams
from appliance.hardware.models import HardwareReport
from appliance.plan.memory import MemoryEstimate
from appliance.plan.serving import SERVE_WEIGHT_BYTES, ServingMemory, plan_beside_live
from appliance.profiles.schema import ServingSettings
from appliance.profiles.select import Selection
from appliance.registry.registry import ModelRecord
from appliance.registry.shapes import shape_of


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    reason: str  # shown by `deploy create`/`deploy list` and the API


@dataclass(frozen=True)
class ServingPlan:
    """Serving one model under one deployment name: everything a launch needs except its port and socket."""

    deployment: str
    model: ModelRecord
    backend: str
    reason: str  # why this backend
    settings: ServingSettings  # the profile's, with the deployment's overrides applied
    tensor_parallel_size: int
    extra_args: tuple[str, ...]
    estimate: MemoryEstimate
    memory: ServingMemory  # how its backend uses memory
    on_gpu: bool = False

    def launch_spec(self, port: int, unix_socket: Path | None = None, adapters: tuple[tuple[str, Path], ...] = (),
                    api_key: str | None = None) -> LaunchSpec:
        s = self.settings
        return LaunchSpec(
            deployment=self.deployment, model_path=self.model.file, port=port, context_length=s.context_length,
            parallel_slots=s.parallel_slots, threads=s.threads, gpu_layers=s.gpu_layers,
            gpu_memory_utilization=s.gpu_memory_utilization, max_model_len=s.max_model_len, max_loras=s.max_loras,
            tensor_parallel_size=self.tensor_parallel_size, quantization=s.quantization, adapters=adapters,
            extra_args=self.extra_args, unix_socket=unix_socket, api_key=api_key, dtype=s.dtype,
            max_lora_rank=s.max_lora_rank, on_gpu=self.on_gpu, embeddings=s.embeddings,
        )

    @property
    def gpu_claim(self) -> int:
        """Bytes it holds on each GPU while it runs (0 for a backend that keeps everything on the CPU)."""
        return self.memory.gpu_claim(self.estimate, self.settings)

    def with_threads(self, threads: int) -> ServingPlan:
        return replace(self, settings=self.settings.model_copy(update={"threads": threads}))


def _variant(model: ModelRecord) -> str:
    quant = model.quantization or ""
    return quant if quant in SERVE_WEIGHT_BYTES else ("none" if model.format == "hf" else "F16")


class FitPlanner:
    def __init__(self, selection: Selection, hardware: HardwareReport, backends: Mapping[str, Backend]) -> None:
        self.selection = selection
        self.hardware = hardware
        self.backends = backends

    def choose_backend(self, model: ModelRecord, requested: str | None) -> BackendChoice:
        """The one rule: the deployment's own choice if it made one; else the profile's backend when it can
        serve the model's format; else the backend the format needs. Refused when that one is not installed."""
        if model.kind.startswith("adapter"):
            raise DeploymentError(f"{model.name!r} is a LoRA adapter: attach it to a deployment of its base "
                                  f"({model.metadata.get('serve_over', 'its base model')}) instead")
        profile = self.selection.profile
        needed = next((n for n, b in self.backends.items() if model.format in b.capabilities.formats), None)
        if needed is None:
            raise DeploymentError(f"model {model.name!r} ({model.format}) cannot be served directly; export it first")
        if requested is not None:
            choice = BackendChoice(requested, f"{requested}: asked for by the deployment")
        elif profile.serving.backend == needed:
            choice = BackendChoice(needed, f"{needed}: the {profile.name} profile's backend")
        else:
            choice = BackendChoice(needed, f"{needed}: {model.format} models are served by {needed} (the "
                                           f"{profile.name} profile prefers {profile.serving.backend})")
        backend = self.backends.get(choice.backend)
        if backend is None:
            have = ", ".join(self.backends)
            raise DeploymentError(f"backend {choice.backend!r} is not available here (have: {have})")
        if model.format not in backend.capabilities.formats:
            raise DeploymentError(f"backend {choice.backend} cannot serve {model.format} models (it serves "
                                  f"{', '.join(backend.capabilities.formats)}); {needed} does")
        missing = backend.unavailable()
        if missing:
            raise DeploymentError(f"{choice.reason}, but it cannot start here: {missing}")
        return choice

    def settings(self, params: DeploymentParams, backend: str) -> ServingSettings:
        """The profile's serving settings with the deployment's overrides (unset ones keep the profile's)."""
        serving = self.selection.profile.serving
        overrides = params.model_dump(exclude_none=True, exclude={"extra_args"})
        threads = params.threads if params.threads is not None else (serving.threads
                                                                      or self.hardware.cpu.physical_cores)
        defaults = self.backends[backend].serving_defaults(serving, overrides, bool(self.hardware.compute_units()))
        update: dict[str, object] = {**defaults, **overrides, "backend": backend, "threads": threads,
                                     "tensor_parallel_size": self.selection.tensor_parallel_size}
        return serving.model_copy(update=update)

    def memory(self, backend: str) -> ServingMemory:
        return self.backends[backend].capabilities.memory

    def estimate(self, model: ModelRecord, settings: ServingSettings) -> MemoryEstimate:
        return self.memory(settings.backend).estimate(shape_of(model), settings, self.hardware, _variant(model),
                                                      self.selection.tensor_parallel_size)

    def _offload(self, model: ModelRecord, settings: ServingSettings, params: DeploymentParams) -> ServingSettings:
        """A backend that splits layers (llama.cpp) on a GPU too small for the whole model: as many layers as fit
        (from the planner), the rest on the CPU, unless the deployment set gpu_layers itself."""
        memory = self.memory(settings.backend)
        if not memory.offloads_layers or params.gpu_layers is not None or settings.gpu_layers != -1 \
                or not self.hardware.compute_units():
            return settings
        layers = memory.offload_layers(shape_of(model), settings, self.hardware, _variant(model))
        return settings if layers == -1 else settings.model_copy(update={"gpu_layers": layers})

    def plan(self, name: str, model: ModelRecord, params: DeploymentParams, backend: str, reason: str = "",
             check: bool = True) -> ServingPlan:
        """Raises DeploymentError, with the planner's numbers, when `check` and serving it would not fit."""
        if params.embeddings and not self.backends[backend].capabilities.embeddings:
            serving = [name for name, b in self.backends.items() if b.capabilities.embeddings]
            raise DeploymentError(f"embeddings deployments run on {' or '.join(serving) or 'no backend here'}; "
                                  f"{backend} was chosen")
        if check:
            tunable = self.backends[backend].capabilities.tunable_flags
            refused = refused_extra_args(params.extra_args, tunable)
            if refused:
                raise DeploymentError(f"extra_args not allowed for {backend}: {', '.join(refused)} (allowed: "
                                      f"{', '.join(sorted(f for f in tunable if f.startswith('--')))})")
        settings = self._offload(model, self.settings(params, backend), params)
        estimate = self.estimate(model, settings)
        if check and not estimate.fits:
            raise DeploymentError(f"refused: {estimate.message}")
        return ServingPlan(deployment=name, model=model, backend=backend, reason=reason, settings=settings,
                           tensor_parallel_size=self.selection.tensor_parallel_size,
                           extra_args=tuple(params.extra_args), estimate=estimate, memory=self.memory(backend),
                           on_gpu=bool(self.hardware.compute_units()))

    def check_beside_live(self, live: ServingPlan, candidate: ServingPlan) -> None:
        """Refuse, with the numbers, a blue/green candidate that cannot start on the GPUs beside the live backend
        (vLLM would fail at start-up for want of free memory): better now than after a failed start."""
        if not self.hardware.compute_units() or not live.gpu_claim or not candidate.gpu_claim:
            return
        estimate = plan_beside_live(live.gpu_claim, f"{live.backend}, {live.model.name}", candidate.gpu_claim,
                                    f"{candidate.backend}, {candidate.model.name}", self.hardware)
        if not estimate.fits:
            raise DeploymentError(
                f"refused: a blue/green switch runs the candidate beside the live backend; {estimate.message}. "
                "Nothing changed. Make room for both (vLLM: a lower gpu_memory_utilization, the share of each GPU "
                "it reserves; llama.cpp: fewer context_length, parallel_slots or gpu_layers), or stop the "
                "deployment first and switch it while stopped (no blue/green, no eval gate)")
