"""Hardware detection: host facts plus GPUs through NVML (or a recorded replay of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pynvml

from appliance.hardware.host import read_cpu, read_disk, read_memory, read_os
from appliance.hardware.models import HardwareReport
from appliance.hardware.nvml import read_nvml


def detect_hardware(state_dir: Path, nvml_lib: Any = pynvml) -> HardwareReport:
    """Detect this box. Never raises for missing GPUs or NVML; the reason lands in `report.nvml`."""
    status, gpus = read_nvml(nvml_lib)
    return HardwareReport(
        cpu=read_cpu(),
        memory=read_memory(),
        disk=read_disk(state_dir),
        os=read_os(),
        nvml=status,
        gpus=gpus,
    )
