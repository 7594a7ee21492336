"""Hardware detection over recorded NVML reports of real machines, and the real path on this box."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from appliance.hardware import RecordedNvml, detect_hardware, sample_gpus
from appliance.hardware.nvml import read_nvml
from appliance.profiles import select_profile
from tests.conftest import recorded_machine
from tests.helpers import HW_FIXTURES

MACHINES = [
    # (fixture, expected profile, GPUs, first GPU name, MiB, compute capability); one line per case
    # a plain CPU box: libnvidia-ml.so.1 missing is a normal outcome
    ("linux_cpu_only_nvml_library_not_found.json", "cpu", 0, None, None, None),
    # driver installed but kernel module not loaded: still a CPU box, reason recorded
    ("linux_nvidia_driver_not_loaded.json", "cpu", 0, None, None, None),
    # driver upgraded without reboot
    ("linux_nvidia_rm_version_mismatch.json", "cpu", 0, None, None, None),
    # AWS g5 A10G: the a10g profile by name, cc and the 20-24 GiB VRAM band
    ("linux_nvidia_1_a10g_23028mib.json", "a10g", 1, "NVIDIA A10G", 23028, "8.6"),
    # L4 is in the same 24 GiB datacenter class
    ("linux_nvidia_1_l4_23034mib.json", "a10g", 1, "NVIDIA L4", 23034, "8.9"),
    # H100 SXM: h100 wins over the generic datacenter-gpu match (more specific)
    ("linux_nvidia_1_h100_80gb_hbm3_81559mib.json", "h100", 1, "NVIDIA H100 80GB HBM3", 81559, "9.0"),
    # two H100s: same profile, tensor parallel 2
    ("linux_nvidia_2_h100_80gb_hbm3_81559mib.json", "h100", 2, "NVIDIA H100 80GB HBM3", 81559, "9.0"),
    # GeForce cards get the consumer profile
    ("linux_nvidia_1_rtx_4090_24564mib.json", "consumer-gpu", 1, "NVIDIA GeForce RTX 4090", 24564, "8.9"),
    ("linux_nvidia_1_rtx_3060_12288mib.json", "consumer-gpu", 1, "NVIDIA GeForce RTX 3060", 12288, "8.6"),
    # T4: Turing, no bf16, own profile
    ("linux_nvidia_1_tesla_t4_15360mib.json", "t4", 1, "Tesla T4", 15360, "7.5"),
    # A100 80GB: no named profile, the generic datacenter one
    ("linux_nvidia_1_a100_sxm4_80gb_81920mib.json", "datacenter-gpu", 1, "NVIDIA A100-SXM4-80GB", 81920, "8.0"),
    # one MIG slice: sized by the slice (20096 MiB), not the 40 GiB parent
    ("linux_nvidia_1_a100_sxm4_40gb_mig_1_slice_3g20gb.json", "mig-slice", 1, "NVIDIA A100-SXM4-40GB", 40960,
     "8.0"),
    # Jetson: memory Not Supported, nothing can size it: the fallback, with the reason
    ("linux_jetson_orin_nvgpu.json", "cpu", 1, "Orin (nvgpu)", None, "8.7"),
]


@pytest.mark.parametrize(("fixture", "profile", "gpus", "name", "mib", "cc"), MACHINES,
                         ids=[m[0].removesuffix(".json") for m in MACHINES])
def test_recorded_machine_maps_to_profile(profiles, fixture, profile, gpus, name, mib, cc):
    report = recorded_machine(fixture)
    assert len(report.gpus) == gpus
    if gpus:
        assert report.nvml.available
        assert report.gpus[0].name == name
        assert report.gpus[0].memory_total_mib == mib
        assert report.gpus[0].compute_capability == cc
    selection = select_profile(profiles, report)
    assert selection.name == profile, selection.reason
    assert selection.reason.startswith(profile)


def test_nvml_failures_are_reasons_not_exceptions():
    status, gpus = read_nvml(RecordedNvml.from_file(HW_FIXTURES / "linux_nvidia_rm_version_mismatch.json"))
    assert not status.available and gpus == []
    assert "RM has detected an NVML/RM version mismatch." in status.reason
    status, _ = read_nvml(RecordedNvml.from_file(HW_FIXTURES / "linux_nvidia_driver_not_loaded.json"))
    assert "Driver Not Loaded" in status.reason


def test_two_h100s_get_tensor_parallel_two(profiles):
    selection = select_profile(profiles, recorded_machine("linux_nvidia_2_h100_80gb_hbm3_81559mib.json"))
    assert selection.tensor_parallel_size == 2


def test_mig_slice_is_the_compute_unit():
    report = recorded_machine("linux_nvidia_1_a100_sxm4_40gb_mig_1_slice_3g20gb.json")
    assert report.gpus[0].mig_mode == "enabled"
    units = report.compute_units()
    assert [(u.is_mig_slice, u.mig_profile, u.memory_mib) for u in units] == [(True, "3g.20gb", 20096)]


def test_recorded_fields_as_nvml_reports_them():
    report = recorded_machine("linux_nvidia_1_a10g_23028mib.json")
    gpu = report.gpus[0]
    assert (gpu.power_limit_w, gpu.mig_mode, gpu.memory_free_mib) == (300.0, "unsupported", 23028 - 8722)
    assert (report.nvml.driver_version, report.nvml.cuda_driver_version) == ("535.247.01", "12.2")


def test_jetson_explains_why_no_gpu_profile_fits(profiles):
    selection = select_profile(profiles, recorded_machine("linux_jetson_orin_nvgpu.json"))
    assert "no profile matched" in selection.reason
    consumer = next(v for v in selection.verdicts if v.name == "consumer-gpu")
    assert not consumer.matched


def test_live_samples_replayed():
    samples = sample_gpus(RecordedNvml.from_file(HW_FIXTURES / "linux_nvidia_1_rtx_4090_24564mib.json"))
    assert samples[0].power_w == 22.0
    assert samples[0].memory_used_mib == 507
    assert samples[0].temperature_c is None  # not recorded -> Not Supported -> None, no crash


def test_this_box_through_real_nvml(tmp_path: Path):
    """The default path calls the real pynvml; here (no GPU) that is a CPU report with the reason."""
    report = detect_hardware(tmp_path)
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        has_nvml = True
    except pynvml.NVMLError:
        has_nvml = False
    if not has_nvml:
        assert not report.nvml.available and report.gpus == []
        assert report.nvml.reason.startswith("NVML unavailable:")
    assert report.cpu.logical_cores >= 1 and report.memory.total_mib > 0 and report.disk.free_mib > 0
    assert report.os.kernel
