"""The planner step of a deployment: which backend serves a model, its serving settings resolved once from the
profile and the deployment's overrides, and whether that fits this box (alone, or beside a live version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from appliance.backends.base import Backend, LaunchSpec
from appliance.deploy.errors import DeploymentError
from appliance.deploy.models import DeploymentParams
from appliance.hardware.models import HardwareReport
from appliance.plan.memory import SERVE_WEIGHT_BYTES, MemoryEstimate, gpu_claim, plan_beside_live, plan_serving
from appliance.profiles.schema import ServingSettings
from appliance.profiles.select import Selection
from appliance.registry.registry import ModelRecord
from appliance.registry.shapes import shape_of

FORMAT_BACKENDS = {"gguf": "llamacpp", "hf": "vllm"}


@dataclass(frozen=True)
class ServingPlan:
    """Serving one model under one deployment name: everything a launch needs except its port and socket."""

    deployment: str
    model: ModelRecord
    backend: str
    settings: ServingSettings  # the profile's, with the deployment's overrides applied
    tensor_parallel_size: int
    extra_args: tuple[str, ...]
    estimate: MemoryEstimate

    def launch_spec(self, port: int, unix_socket: Path | None = None,
                    adapters: tuple[tuple[str, Path], ...] = ()) -> LaunchSpec:
        s = self.settings
        return LaunchSpec(
            deployment=self.deployment, model_path=self.model.file, port=port, context_length=s.context_length,
            parallel_slots=s.parallel_slots, threads=s.threads, gpu_layers=s.gpu_layers,
            gpu_memory_utilization=s.gpu_memory_utilization, max_model_len=s.max_model_len, max_loras=s.max_loras,
            tensor_parallel_size=self.tensor_parallel_size, quantization=s.quantization, adapters=adapters,
            extra_args=self.extra_args, unix_socket=unix_socket,
        )

    @property
    def gpu_claim(self) -> int:
        """Bytes it holds on each GPU while it runs (0 for llama.cpp kept on the CPU)."""
        if self.backend != "vllm" and self.settings.gpu_layers == 0:
            return 0
        return gpu_claim(self.estimate, self.backend)

    def with_threads(self, threads: int) -> ServingPlan:
        return replace(self, settings=self.settings.model_copy(update={"threads": threads}))


class FitPlanner:
    def __init__(self, selection: Selection, hardware: HardwareReport, backends: Mapping[str, Backend]) -> None:
        self.selection = selection
        self.hardware = hardware
        self.backends = backends

    def choose_backend(self, model: ModelRecord, requested: str | None) -> str:
        """The backend that serves `model`: the one requested, else the one its format needs."""
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

    def settings(self, params: DeploymentParams, backend: str) -> ServingSettings:
        """The profile's serving settings with the deployment's overrides (unset ones keep the profile's)."""
        serving = self.selection.profile.serving
        overrides = params.model_dump(exclude_none=True, exclude={"extra_args"})
        threads = params.threads if params.threads is not None else (serving.threads
                                                                      or self.hardware.cpu.physical_cores)
        return serving.model_copy(update={**overrides, "backend": backend, "threads": threads,
                                          "tensor_parallel_size": self.selection.tensor_parallel_size})

    def estimate(self, model: ModelRecord, settings: ServingSettings) -> MemoryEstimate:
        quant = model.quantization or ""
        variant = quant if quant in SERVE_WEIGHT_BYTES else ("none" if model.format == "hf" else "F16")
        return plan_serving(shape_of(model), settings, self.hardware, variant, self.selection.tensor_parallel_size)

    def plan(self, name: str, model: ModelRecord, params: DeploymentParams, backend: str,
             check: bool = True) -> ServingPlan:
        """Raises DeploymentError, with the planner's numbers, when `check` and serving it would not fit."""
        settings = self.settings(params, backend)
        estimate = self.estimate(model, settings)
        if check and not estimate.fits:
            raise DeploymentError(f"refused: {estimate.message}")
        return ServingPlan(deployment=name, model=model, backend=backend, settings=settings,
                           tensor_parallel_size=self.selection.tensor_parallel_size,
                           extra_args=tuple(params.extra_args), estimate=estimate)

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
