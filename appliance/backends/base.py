"""The small interface every serving backend implements, so llama.cpp and vLLM sit side by side."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from appliance.errors import ApplianceError
from appliance.plan.serving import ServingMemory
from appliance.profiles.schema import ServingSettings

if TYPE_CHECKING:
    from appliance.config import ApplianceConfig

# Where `make llama` / `make vllm` cache their builds. A service user may have no home at all (systemd's
# DynamicUser): then there is no cache, and the packaged locations are used.
_HOME = os.path.expanduser("~")
BUILD_CACHE = Path(_HOME if _HOME != "~" else "/nonexistent") / ".cache" / "slm-appliance"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one backend process for one deployment."""

    deployment: str
    model_path: Path
    port: int
    context_length: int = 2048
    parallel_slots: int = 4
    threads: int = 0
    gpu_layers: int = 0
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    max_loras: int | None = None
    tensor_parallel_size: int = 1
    quantization: str | None = None
    adapters: tuple[tuple[str, Path], ...] = ()
    extra_args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    # Listen here when set (beside the port, or instead of it where the backend says so): the gateway's hop over
    # a Unix socket costs less CPU than loopback TCP.
    unix_socket: Path | None = None
    # Required by the backend on its API when set: only the gateway (which adds it) gets answers there.
    api_key: str | None = None
    dtype: str = "auto"
    max_lora_rank: int = 16
    on_gpu: bool = False  # the box has GPUs the backend should use
    embeddings: bool = False  # serves /v1/embeddings (pooled vectors) rather than generation

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def computes_on_cpu(self) -> bool:
        """Decodes on the CPU cores (no GPU, or no layer offloaded to one)."""
        return not self.on_gpu or self.gpu_layers == 0

    @property
    def threaded_on_cpu(self) -> bool:
        """Computes on the CPU with more than one thread (0: all cores, counted as 2): such a process stalls at
        every thread barrier while another one computes on the same cores (docs/deploy.md)."""
        return self.gpu_layers == 0 and (self.threads or 2) > 1


@dataclass(frozen=True)
class Capabilities:
    """What a backend is and can do, declared once in its module; the planner, the deployment service, the
    gateway and the profile loader read these instead of testing the backend's name."""

    # Model formats it serves: a registry model's (gguf, hf) and a profile's quantization format (awq, fp8).
    formats: tuple[str, ...]
    memory: ServingMemory  # how it uses memory (appliance.plan.serving)
    continuous_batching: bool
    lora_adapters: bool
    gpu_required: bool
    adapter_kind: str = "adapter-gguf"  # the registry kind of the LoRA adapters it loads
    # Loads and unloads adapters while it serves (vLLM); otherwise a new set means a new process (blue/green).
    runtime_lora: bool = False
    adapter_needs_parent: bool = False  # an adapter must have been trained on the very model it serves over
    adapter_scale_fixed: bool = False  # applies adapters at scale 1.0 only (no per-adapter scale)
    embeddings: bool = False  # can serve /v1/embeddings (a deployment created with embeddings: true)
    takes_api_key: bool = False  # serves its API only to callers with the per-process key we give it
    unix_socket: bool = False  # listens on a Unix socket in the private runtime dir (the gateway's cheaper hop)
    tcp_port: bool = True  # also on a loopback TCP port; False: on the socket alone, where all our calls then go
    # Operator flags a deployment's `extra_args` may add; anything else (--host, --model, --api-key, log or
    # path flags) would let a deployment rebind the backend, read files or drop its key.
    tunable_flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Launch:
    """A command line with the arguments we injected recorded apart, so they can be shown to the operator."""

    argv: list[str]
    injected: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


Builder = tuple[str, Callable[["LaunchSpec"], list[str]]]
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")


def refused_extra_args(args: tuple[str, ...] | list[str], allowed: frozenset[str]) -> list[str]:
    """The flags of `args` not in `allowed` (values, negative numbers included, are not flags)."""
    return [a.split("=", 1)[0] for a in args if a.startswith("-") and not _NUMBER.match(a)
            and a.split("=", 1)[0] not in allowed]


def api_key_env(spec: LaunchSpec, variable: str) -> dict[str, str]:
    """The per-process key in the environment, not on the command line: any local user can read a process's
    argv (ps, /proc/<pid>/cmdline); its environment only its own user and root can."""
    return {variable: spec.api_key} if spec.api_key else {}


def shown_key(spec: LaunchSpec, variable: str) -> dict[str, str]:
    """What the operator sees of the key among the injected arguments."""
    return {"security": f"API key in ${variable} (per process, known to the gateway only)"} if spec.api_key else {}


def injected_arguments(builders: tuple[Builder, ...], spec: LaunchSpec,
                       tunable: frozenset[str]) -> tuple[list[str], dict[str, str]]:
    """The arguments of every named builder, then the operator's overrides (last, so they win), and what each
    group injected for display (no secret is an argument: keys go in the environment).

    Raises:
        LaunchRefused: `spec.extra_args` holds a flag the backend does not allow (checked here too, not only
            when a deployment is created, so a row stored before the check cannot rebind a backend).
    """
    refused = refused_extra_args(spec.extra_args, tunable)
    if refused:
        raise LaunchRefused(f"extra_args not allowed for this backend: {', '.join(refused)}")
    args: list[str] = []
    injected: dict[str, str] = {}
    for group, builder in builders:
        part = builder(spec)
        if part:
            injected[group] = " ".join(part)
        args += part
    return [*args, *spec.extra_args], injected


class BackendUnavailable(ApplianceError):
    """The backend cannot start here: its program or package is not installed on this box."""

    status, code = 503, "backend_unavailable"


class LaunchRefused(BackendUnavailable):
    """The launch asked for something the backend may not be given (an extra flag outside its allow-list)."""

    status, code = 400, "extra_args_refused"


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    @classmethod
    def from_config(cls, config: ApplianceConfig, state_dir: Path) -> Backend:
        """The backend as the daemon runs it (programs and caches from the config)."""
        ...

    @classmethod
    def profile_problems(cls, serving: ServingSettings) -> list[str]:
        """What is wrong with a profile's serving settings for this backend (an empty list: nothing)."""
        ...

    def serving_defaults(self, profile: ServingSettings, overrides: Mapping[str, object],
                         on_gpu: bool) -> dict[str, object]:
        """Settings this backend needs that the profile and the deployment's `overrides` leave unset."""
        ...

    async def renders_tools(self, client: httpx.AsyncClient, spec: LaunchSpec) -> bool | None:
        """Whether the running process renders a request's `tools` itself (else the gateway does); None when
        it could not tell (asked again next time)."""
        ...

    def adapter_selector(self, spec: LaunchSpec, adapter: int | None, scale: float) -> dict[str, Any] | None:
        """Fields merged into a request body to serve adapter number `adapter` at `scale` (None: the base
        model); None when the body goes as sent."""
        ...

    def build_launch(self, spec: LaunchSpec) -> Launch:
        """The argv (and environment) that serves `spec`. Raises BackendUnavailable."""
        ...

    def health_url(self, spec: LaunchSpec) -> str: ...

    def unavailable(self) -> str | None:
        """Why this backend cannot start on this box (program or package missing), or None."""
        ...

    def endpoint(self, spec: LaunchSpec) -> str:
        """Base URL of the backend's OpenAI-compatible API (no trailing slash)."""
        ...

    async def load_adapter(self, client: httpx.AsyncClient, spec: LaunchSpec, name: str, path: Path) -> str | None:
        """Load a LoRA adapter into the running process (runtime_lora backends); None, or why it did not."""
        ...

    async def unload_adapter(self, client: httpx.AsyncClient, spec: LaunchSpec, name: str) -> str | None: ...


async def http_healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(url, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
