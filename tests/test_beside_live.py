"""A blue/green candidate runs beside the live backend: on GPUs both must fit at once, checked before anything
starts. Recorded GPUs (tests/fixtures/hardware), real profiles, the real fit planner of deployments; the models
are registry records of the sizes named (their files are never loaded: nothing starts)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.backends.llamacpp import LlamaCppBackend
from appliance.backends.registry import serving_memory
from appliance.deploy.errors import DeploymentError
from appliance.deploy.fit import FitPlanner, ServingPlan
from appliance.deploy.models import DeploymentParams
from appliance.plan.memory import MIB
from appliance.plan.serving import plan_beside_live
from appliance.plan.shapes import shape_for
from appliance.profiles import select_profile
from appliance.profiles.schema import Profile
from appliance.registry.registry import ModelRecord
from tests.conftest import recorded_machine

RTX_3060 = "linux_nvidia_1_rtx_3060_12288mib.json"
H100 = "linux_nvidia_1_h100_80gb_hbm3_81559mib.json"


def test_vllm_claims_its_utilization_share_and_llamacpp_what_it_loads(profiles: list[Profile]) -> None:
    report = recorded_machine(H100)
    profile = select_profile(profiles, report).profile
    assert profile.serving.backend == "vllm" and profile.serving.gpu_memory_utilization == 0.9
    estimate = serving_memory("vllm").estimate(shape_for(8e9), profile.serving, report, "fp8")
    capacity = 81559 * MIB
    # vLLM reserves its share at start, whatever the model needs; llama.cpp claims what it loads.
    assert serving_memory("vllm").gpu_claim(estimate, profile.serving) == int(capacity * 0.9)
    on_gpu = profile.serving.model_copy(update={"gpu_layers": -1})
    assert serving_memory("llamacpp").gpu_claim(estimate, on_gpu) == estimate.total_bytes
    both = plan_beside_live(int(capacity * 0.9), "vllm", int(capacity * 0.9), "vllm", report)
    assert not both.fits and "does NOT fit" in both.message
    halves = plan_beside_live(int(capacity * 0.45), "vllm", int(capacity * 0.45), "vllm", report)
    assert halves.fits and halves.total_bytes == 2 * int(capacity * 0.45)


def _record(name: str, params: float, quantization: str) -> ModelRecord:
    return ModelRecord(id=name, name=name, kind="gguf", format="gguf", path=f"/nonexistent/{name}.gguf",
                       sha256="0" * 64, size_bytes=1, architecture="llama", params=int(params), context_length=4096,
                       quantization=quantization, parent_id=None, source="test", metadata={}, created_at=time.time())


@pytest.fixture
def consumer_gpu(profiles: list[Profile], tmp_path: Path) -> FitPlanner:
    report = recorded_machine(RTX_3060, tmp_path)
    selection = select_profile(profiles, report)
    assert selection.profile.name == "consumer-gpu" and selection.profile.serving.gpu_layers == -1
    return FitPlanner(selection, report, {"llamacpp": LlamaCppBackend(tmp_path)})


def test_two_7b_models_on_a_12_gib_gpu_are_refused_with_the_numbers(consumer_gpu: FitPlanner) -> None:
    # Each: 7e9 × 4.85/8 = 3.95 GiB weights + KV 4×4096 tokens × 128 KiB = 2 GiB + 0.25 GiB buffers = 6.2 GiB;
    # two of them (12.4 GiB) do not fit in 12 GiB, while either alone does.
    live = consumer_gpu.plan("chat", _record("mistral-q4", 7e9, "Q4_K_M"), DeploymentParams(), "llamacpp")
    candidate = consumer_gpu.plan("chat", _record("mistral-ft-q4", 7e9, "Q4_K_M"), DeploymentParams(), "llamacpp")
    with pytest.raises(DeploymentError) as refused:
        consumer_gpu.check_beside_live(live, candidate)
    message = str(refused.value)
    print("\n" + message)
    assert "runs the candidate beside the live backend" in message and "does NOT fit" in message
    assert "live backend (llamacpp, mistral-q4) 6.20 GiB" in message
    assert "candidate (llamacpp, mistral-ft-q4) 6.20 GiB" in message and "VRAM per GPU (12288 MiB)" in message


def test_small_models_fit_beside_each_other_and_cpu_backends_hold_no_vram(consumer_gpu: FitPlanner) -> None:
    def plan(name: str, params: float, quant: str, **overrides: int) -> ServingPlan:
        return consumer_gpu.plan("chat", _record(name, params, quant), DeploymentParams(**overrides), "llamacpp")

    consumer_gpu.check_beside_live(plan("smol-q8", 1.35e8, "Q8_0"), plan("smol-ft-q8", 1.35e8, "Q8_0"))  # fits
    on_cpu = plan("mistral-q4", 7e9, "Q4_K_M", gpu_layers=0)
    assert on_cpu.gpu_claim == 0
    # Both on the CPU: the RAM check at plan time applies, not the GPU one.
    consumer_gpu.check_beside_live(on_cpu, plan("mistral-ft-q4", 7e9, "Q4_K_M", gpu_layers=0))
