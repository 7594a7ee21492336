"""GPU facts through NVML. The `lib` argument is the seam: the real `pynvml` module by default, a replay of
values recorded on real machines in tests (`appliance.hardware.recorded`). Every NVML failure becomes a
reason in the report, never an exception out of this module."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pynvml

from appliance.hardware.models import GpuInfo, GpuSample, MigDevice, NvmlStatus

log = logging.getLogger(__name__)
T = TypeVar("T")
MIB = 1024 * 1024
_MIG_PROFILE = re.compile(r"MIG\s+(\S+)")


class NvmlLib(Protocol):
    """The part of pynvml this module calls (duck-typed; pynvml itself satisfies it)."""

    def __getattr__(self, name: str) -> Any: ...


def _optional(call: Callable[[], T]) -> T | None:
    """Run one NVML query; Not Supported / N/A (Jetson, vGPU, MIG-enabled parents) yields None."""
    try:
        return call()
    except pynvml.NVMLError as exc:
        log.debug("nvml query not available", extra={"nvml_error": str(exc)})
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cuda_version(raw: int | None) -> str | None:
    # NVML encodes 12.2 as 12020.
    return None if raw is None else f"{raw // 1000}.{(raw % 1000) // 10}"


def read_nvml(lib: Any = pynvml) -> tuple[NvmlStatus, list[GpuInfo]]:
    """Initialise NVML and read every GPU. No library, no driver or no GPU is a status, not an error."""
    try:
        lib.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvmlStatus(available=False, reason=f"NVML unavailable: {exc}"), []
    except OSError as exc:  # a broken libnvidia-ml can surface as a plain loader error
        return NvmlStatus(available=False, reason=f"NVML unavailable: {exc}"), []
    try:
        status = NvmlStatus(
            available=True,
            driver_version=_optional(lambda: _text(lib.nvmlSystemGetDriverVersion())),
            cuda_driver_version=_cuda_version(_optional(lib.nvmlSystemGetCudaDriverVersion)),
            nvml_version=_optional(lambda: _text(lib.nvmlSystemGetNVMLVersion())),
        )
        count = _optional(lib.nvmlDeviceGetCount) or 0
        gpus = [_read_gpu(lib, index) for index in range(count)]
        if not gpus:
            status.reason = "NVML answered but reports no GPU"
        return status, gpus
    finally:
        _optional(lib.nvmlShutdown)


def _read_gpu(lib: Any, index: int) -> GpuInfo:
    handle = lib.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(lambda: lib.nvmlDeviceGetMemoryInfo(handle))
    capability = _optional(lambda: lib.nvmlDeviceGetCudaComputeCapability(handle))
    power_mw = _optional(lambda: lib.nvmlDeviceGetPowerManagementDefaultLimit(handle))
    mig = _optional(lambda: lib.nvmlDeviceGetMigMode(handle))
    mig_mode = "unsupported" if mig is None else ("enabled" if mig[0] == 1 else "disabled")
    return GpuInfo(
        index=index,
        name=_text(lib.nvmlDeviceGetName(handle)),
        uuid=_optional(lambda: _text(lib.nvmlDeviceGetUUID(handle))),
        memory_total_mib=None if memory is None else int(memory.total) // MIB,
        memory_free_mib=None if memory is None else int(memory.free) // MIB,
        compute_capability=None if capability is None else f"{capability[0]}.{capability[1]}",
        power_limit_w=None if power_mw is None else power_mw / 1000.0,
        mig_mode=mig_mode,
        mig_devices=_read_mig_devices(lib, handle) if mig_mode == "enabled" else [],
        pcie_generation=_optional(lambda: int(lib.nvmlDeviceGetCurrPcieLinkGeneration(handle))),
        pcie_width=_optional(lambda: int(lib.nvmlDeviceGetCurrPcieLinkWidth(handle))),
        nvlink_active_links=_count_nvlinks(lib, handle),
    )


def _read_mig_devices(lib: Any, handle: Any) -> list[MigDevice]:
    devices: list[MigDevice] = []
    for slot in range(_optional(lambda: lib.nvmlDeviceGetMaxMigDeviceCount(handle)) or 0):
        mig = _optional(lambda s=slot: lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, s))  # type: ignore[misc]
        if mig is None:  # empty slot
            continue
        name = _optional(lambda m=mig: _text(lib.nvmlDeviceGetName(m)))  # type: ignore[misc]
        match = _MIG_PROFILE.search(name or "")
        memory = _optional(lambda m=mig: lib.nvmlDeviceGetMemoryInfo(m))  # type: ignore[misc]
        devices.append(
            MigDevice(
                index=len(devices),
                profile=match.group(1) if match else None,
                uuid=_optional(lambda m=mig: _text(lib.nvmlDeviceGetUUID(m))),  # type: ignore[misc]
                memory_total_mib=None if memory is None else int(memory.total) // MIB,
            )
        )
    return devices


def _count_nvlinks(lib: Any, handle: Any) -> int | None:
    # Cheap enough: one call per link, and the first unsupported link ends the scan.
    active = 0
    for link in range(int(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18))):
        state = _optional(lambda n=link: lib.nvmlDeviceGetNvLinkState(handle, n))  # type: ignore[misc]
        if state is None:
            return active if link else None
        active += int(state == 1)
    return active


def sample_gpus(lib: Any = pynvml) -> list[GpuSample]:
    """Live utilisation, memory used, temperature and power of every GPU (empty without NVML)."""
    try:
        lib.nvmlInit()
    except (pynvml.NVMLError, OSError):
        return []
    try:
        samples = []
        for index in range(_optional(lib.nvmlDeviceGetCount) or 0):
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            util = _optional(lambda h=handle: lib.nvmlDeviceGetUtilizationRates(h))  # type: ignore[misc]
            memory = _optional(lambda h=handle: lib.nvmlDeviceGetMemoryInfo(h))  # type: ignore[misc]
            temp = _optional(
                lambda h=handle: lib.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)  # type: ignore[misc]
            )
            power = _optional(lambda h=handle: lib.nvmlDeviceGetPowerUsage(h))  # type: ignore[misc]
            samples.append(
                GpuSample(
                    index=index,
                    utilization_pct=None if util is None else float(util.gpu),
                    memory_used_mib=None if memory is None else int(memory.used) // MIB,
                    temperature_c=None if temp is None else float(temp),
                    power_w=None if power is None else power / 1000.0,
                )
            )
        return samples
    finally:
        _optional(lib.nvmlShutdown)
