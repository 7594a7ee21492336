"""What hardware detection reports; these models travel through the API and the CLI's --json."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MigDevice(BaseModel):
    """One MIG slice of a GPU: what a process on that slice can use."""

    index: int
    profile: str | None = Field(None, description="MIG profile such as 1g.10gb, when known.")
    uuid: str | None = None
    memory_total_mib: int | None = None


class GpuInfo(BaseModel):
    """Static facts about one GPU, as NVML reports them."""

    index: int
    name: str
    uuid: str | None = None
    memory_total_mib: int | None = Field(None, description="None where NVML says Not Supported (Jetson).")
    memory_free_mib: int | None = None
    compute_capability: str | None = Field(None, description="major.minor, e.g. 8.6")
    power_limit_w: float | None = Field(None, description="Default power limit (the SKU's, not a user cap).")
    mig_mode: str = Field("unsupported", description="enabled, disabled or unsupported")
    mig_devices: list[MigDevice] = Field(default_factory=list)
    pcie_generation: int | None = None
    pcie_width: int | None = None
    nvlink_active_links: int | None = None


class GpuSample(BaseModel):
    """A live sample of one GPU for the dashboard; None where the query is not supported."""

    index: int
    utilization_pct: float | None = None
    memory_used_mib: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None


class NvmlStatus(BaseModel):
    """Whether NVML answered; when it did not, why (a CPU-only box is a normal outcome)."""

    available: bool
    reason: str = ""
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None


class CpuInfo(BaseModel):
    model: str
    physical_cores: int
    logical_cores: int
    features: list[str] = Field(default_factory=list, description="Of interest: avx2, avx512f, ...")
    architecture: str


class MemoryInfo(BaseModel):
    total_mib: int
    available_mib: int


class DiskInfo(BaseModel):
    path: str
    total_mib: int
    free_mib: int


class OsInfo(BaseModel):
    name: str
    kernel: str


class ComputeUnit(BaseModel):
    """What one training or serving process can use: a whole GPU, or one MIG slice of it."""

    gpu_index: int
    name: str
    memory_mib: int | None
    compute_capability: str | None
    is_mig_slice: bool = False
    mig_profile: str | None = None


class HardwareReport(BaseModel):
    """Everything detection found on this box."""

    cpu: CpuInfo
    memory: MemoryInfo
    disk: DiskInfo
    os: OsInfo
    nvml: NvmlStatus
    gpus: list[GpuInfo] = Field(default_factory=list)

    def compute_units(self) -> list[ComputeUnit]:
        """GPUs as a workload sees them: MIG-enabled GPUs contribute their slices, others themselves."""
        units: list[ComputeUnit] = []
        for gpu in self.gpus:
            if gpu.mig_mode == "enabled":
                units.extend(
                    ComputeUnit(
                        gpu_index=gpu.index,
                        name=gpu.name,
                        memory_mib=mig.memory_total_mib,
                        compute_capability=gpu.compute_capability,
                        is_mig_slice=True,
                        mig_profile=mig.profile,
                    )
                    for mig in gpu.mig_devices
                )
            else:
                units.append(
                    ComputeUnit(
                        gpu_index=gpu.index,
                        name=gpu.name,
                        memory_mib=gpu.memory_total_mib,
                        compute_capability=gpu.compute_capability,
                    )
                )
        return units
