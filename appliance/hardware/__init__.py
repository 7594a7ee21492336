"""Hardware detection: NVIDIA GPUs through NVML, and CPU, memory, disk and OS through psutil and /proc."""

from appliance.hardware.detect import detect_hardware
from appliance.hardware.models import GpuInfo, GpuSample, HardwareReport
from appliance.hardware.nvml import sample_gpus
from appliance.hardware.recorded import RecordedNvml

__all__ = ["GpuInfo", "GpuSample", "HardwareReport", "RecordedNvml", "detect_hardware", "sample_gpus"]
