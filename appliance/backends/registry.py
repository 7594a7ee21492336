"""The serving backends this appliance can run. A new backend is its own module in `appliance/backends` (a
class with the `Backend` interface and its `Capabilities`) and one line in BACKEND_TYPES."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from appliance.backends.base import Backend
from appliance.backends.llamacpp import LlamaCppBackend
from appliance.backends.vllm import VllmBackend
from appliance.plan.serving import ServingMemory
from appliance.profiles.schema import BackendRules, ServingSettings

if TYPE_CHECKING:
    from appliance.config import ApplianceConfig

BACKEND_TYPES: tuple[type[Backend], ...] = (
    LlamaCppBackend,
    VllmBackend,
)


def backend_names() -> list[str]:
    return [backend.name for backend in BACKEND_TYPES]


def create_backends(config: ApplianceConfig, state_dir: Path) -> dict[str, Backend]:
    """Every backend, as the daemon runs it; one that cannot start here says why when it is chosen."""
    return {backend.name: backend.from_config(config, state_dir) for backend in BACKEND_TYPES}


def backend_rules() -> dict[str, BackendRules]:
    """What each backend says about the profiles that name it (the profile loader checks them)."""
    return {backend.name: _Rules(backend) for backend in BACKEND_TYPES}


def serving_memory(name: str) -> ServingMemory:
    """How backend `name` uses memory, with its default settings (for plans made without a daemon)."""
    return next(b for b in BACKEND_TYPES if b.name == name).capabilities.memory


class _Rules:
    def __init__(self, backend: type[Backend]) -> None:
        self.formats = backend.capabilities.formats
        self._backend = backend

    def problems(self, serving: ServingSettings) -> list[str]:
        return self._backend.profile_problems(serving)
