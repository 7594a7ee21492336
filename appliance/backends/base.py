"""The small interface every serving backend implements, so llama.cpp and vLLM sit side by side."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from appliance.errors import ApplianceError


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
    # Also listen here when set: the gateway's hop over a Unix socket costs less CPU than loopback TCP.
    unix_socket: Path | None = None


@dataclass(frozen=True)
class Capabilities:
    formats: tuple[str, ...]
    continuous_batching: bool
    lora_adapters: bool
    gpu_required: bool


@dataclass(frozen=True)
class Launch:
    """A command line with the arguments we injected recorded apart, so they can be shown to the operator."""

    argv: list[str]
    injected: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


class BackendUnavailable(ApplianceError):
    """The backend's program or package is not installed on this box."""

    status, code = 503, "backend_unavailable"


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def build_launch(self, spec: LaunchSpec) -> Launch:
        """The argv (and environment) that serves `spec`. Raises BackendUnavailable."""
        ...

    def health_url(self, spec: LaunchSpec) -> str: ...

    def endpoint(self, spec: LaunchSpec) -> str:
        """Base URL of the backend's OpenAI-compatible API (no trailing slash)."""
        ...


async def http_healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(url, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
