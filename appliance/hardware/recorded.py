"""Replays a recorded NVML report of a real machine through the same calls pynvml offers.

A fixture holds values as NVML returns them (bytes, milliwatts, version integers). A value absent from the
fixture raises NVML's own Not Supported error, exactly as a real GPU does for queries it lacks; `init_error`
names the NVML return code that `nvmlInit` failed with on that machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml


class RecordedNvml:
    """A pynvml stand-in backed by one recorded report (see tests/fixtures/hardware/*.json)."""

    def __init__(self, report: dict[str, Any]) -> None:
        self._report = report
        self._devices: list[dict[str, Any]] = report.get("devices", [])

    @classmethod
    def from_file(cls, path: Path) -> RecordedNvml:
        return cls(json.loads(path.read_text()))

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _fail(code: int) -> Any:
        raise pynvml.NVMLError(code)

    def _value(self, source: dict[str, Any], key: str) -> Any:
        if source.get(key) is None:
            self._fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return source[key]

    def _device(self, handle: Any) -> dict[str, Any]:
        if isinstance(handle, tuple):
            gpu, slot = handle
            return dict(self._devices[gpu]["mig_devices"][slot])
        return dict(self._devices[handle])

    # -- system --------------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        code = self._report.get("init_error")
        if code:
            self._fail(int(getattr(pynvml, code)))

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._value(self._report, "driver_version"))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(self._value(self._report, "cuda_driver_version"))

    def nvmlSystemGetNVMLVersion(self) -> str:
        return str(self._value(self._report, "nvml_version"))

    def nvmlDeviceGetCount(self) -> int:
        return len(self._devices)

    # -- devices -------------------------------------------------------------------------------------
    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index >= len(self._devices):
            self._fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return str(self._value(self._device(handle), "name"))

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return str(self._value(self._device(handle), "uuid"))

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> SimpleNamespace:
        memory = self._value(self._device(handle), "memory")
        return SimpleNamespace(total=memory["total"], free=memory["free"], used=memory["used"])

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        major, minor = self._value(self._device(handle), "cuda_compute_capability")
        return int(major), int(minor)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        return int(self._value(self._device(handle), "power_default_limit_mw"))

    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
        current, pending = self._value(self._device(handle), "mig_mode")
        return int(current), int(pending)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        return int(self._value(self._device(handle), "max_mig_devices"))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, slot: int) -> tuple[int, int]:
        if slot >= len(self._device(handle).get("mig_devices", [])):
            self._fail(pynvml.NVML_ERROR_NOT_FOUND)
        return handle, slot

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: Any) -> int:
        return int(self._value(self._device(handle), "pcie_generation"))

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: Any) -> int:
        return int(self._value(self._device(handle), "pcie_width"))

    def nvmlDeviceGetNvLinkState(self, handle: Any, link: int) -> int:
        links = self._value(self._device(handle), "nvlink_states")
        if link >= len(links):
            self._fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return int(links[link])

    # -- live samples ------------------------------------------------------------------------------
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> SimpleNamespace:
        sample = self._value(self._device(handle), "sample")
        return SimpleNamespace(gpu=self._value(sample, "utilization_gpu"), memory=0)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return int(self._value(self._value(self._device(handle), "sample"), "temperature_c"))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._value(self._value(self._device(handle), "sample"), "power_usage_mw"))
