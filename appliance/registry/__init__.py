"""The model registry."""

from appliance.registry.registry import (
    ModelInUse,
    ModelNotFound,
    ModelRecord,
    NameConflict,
    Registry,
    RegistryError,
)

__all__ = ["ModelInUse", "ModelNotFound", "ModelRecord", "NameConflict", "Registry", "RegistryError"]
