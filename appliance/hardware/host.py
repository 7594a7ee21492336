"""CPU, memory, disk and OS facts through psutil and /proc."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil

from appliance.hardware.models import CpuInfo, DiskInfo, MemoryInfo, OsInfo

MIB = 1024 * 1024
# CPU flags that change which kernels llama.cpp and torch can use.
INTERESTING_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    model, flags = "", set[str]()
    try:
        text = path.read_text()
    except OSError:
        return platform.processor() or platform.machine(), flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), flags


def read_cpu() -> CpuInfo:
    model, flags = _cpuinfo()
    features = [f for f in INTERESTING_FLAGS if f in flags]
    if "amx_tile" in features:
        features[features.index("amx_tile")] = "amx"
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    return CpuInfo(
        model=model,
        physical_cores=physical,
        logical_cores=logical,
        features=features,
        architecture=platform.machine(),
    )


def read_memory() -> MemoryInfo:
    vm = psutil.virtual_memory()
    return MemoryInfo(total_mib=vm.total // MIB, available_mib=vm.available // MIB)


def read_disk(path: Path) -> DiskInfo:
    """Free space where the state lives; the nearest existing parent when it does not exist yet."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = psutil.disk_usage(str(probe))
    return DiskInfo(path=str(path), total_mib=usage.total // MIB, free_mib=usage.free // MIB)


def read_os() -> OsInfo:
    name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return OsInfo(name=name, kernel=platform.release())
