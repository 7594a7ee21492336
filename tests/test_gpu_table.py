"""Every recorded machine (tests/fixtures/hardware: NVML reports of real GPUs) → the profile it gets, the exact
command line its backend gets for an 8B model, and the training method the ladder picks, with its reasons.
Real profiles, the real fit planner and the backends' real argument builders (no process starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.backends import llamacpp, vllm
from appliance.backends.base import injected_arguments
from appliance.deploy.fit import FitPlanner
from appliance.deploy.models import DeploymentParams
from appliance.plan.ladder import choose_method, ladder
from appliance.plan.shapes import shape_for
from appliance.profiles import select_profile
from appliance.profiles.schema import Profile
from appliance.registry.registry import ModelRecord
from tests.conftest import recorded_machine

PARAMS = 8.03e9  # Llama-3.1-8B

TABLE = [
    # no NVML at all: the CPU profile, llama.cpp on the cores; an 8B is past lora-cpu
    ("linux_cpu_only_nvml_library_not_found.json", "cpu",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 8 "
        "--cont-batching --threads 4 --n-gpu-layers 0 --poll 0 --metrics --no-webui --slots --threads-http 24",
        None, ['lora-cpu']),
    # Jetson (NVML without memory figures): the CPU fallback
    ("linux_jetson_orin_nvgpu.json", "cpu",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 8 "
        "--cont-batching --threads 4 --n-gpu-layers 0 --poll 0 --metrics --no-webui --slots --threads-http 24",
        None, ['lora-cpu']),
    # a 3g.20gb MIG slice: GGUF fully on the slice, QLoRA
    ("linux_nvidia_1_a100_sxm4_40gb_mig_1_slice_3g20gb.json", "mig-slice",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 4 "
        "--cont-batching --threads 4 --n-gpu-layers all --metrics --no-webui --slots --threads-http 16",
        'qlora-4bit', ['qlora-4bit']),
    # A100 80GB: AWQ on vLLM; LoRA bf16 of an 8B fits
    ("linux_nvidia_1_a100_sxm4_80gb_81920mib.json", "datacenter-gpu",
        "--model /models/llama-8b --served-model-name chat --host 127.0.0.1 --port 9000 --max-model-len 8192 "
        "--max-num-seqs 32 --dtype auto --gpu-memory-utilization 0.9 --tensor-parallel-size 1 --quantization "
        "awq --enable-lora --max-loras 8 --max-lora-rank 16 --no-enable-log-requests "
        "--disable-uvicorn-access-log",
        'lora-bf16', ['lora-bf16']),
    # A10G: AWQ on vLLM; LoRA bf16 of an 8B does not fit 23 GiB, the ladder takes QLoRA
    ("linux_nvidia_1_a10g_23028mib.json", "a10g",
        "--model /models/llama-8b --served-model-name chat --host 127.0.0.1 --port 9000 --max-model-len 4096 "
        "--max-num-seqs 16 --dtype auto --gpu-memory-utilization 0.9 --tensor-parallel-size 1 --quantization "
        "awq --enable-lora --max-loras 4 --max-lora-rank 16 --no-enable-log-requests "
        "--disable-uvicorn-access-log",
        'qlora-4bit', ['lora-bf16', 'qlora-4bit']),
    # H100: FP8 on vLLM; full fine-tune of an 8B does not fit, LoRA bf16 does
    ("linux_nvidia_1_h100_80gb_hbm3_81559mib.json", "h100",
        "--model /models/llama-8b --served-model-name chat --host 127.0.0.1 --port 9000 --max-model-len 8192 "
        "--max-num-seqs 64 --dtype auto --gpu-memory-utilization 0.9 --tensor-parallel-size 1 --quantization "
        "fp8 --enable-lora --max-loras 8 --max-lora-rank 64 --no-enable-log-requests "
        "--disable-uvicorn-access-log",
        'lora-bf16', ['full', 'lora-bf16']),
    # L4 shares the a10g profile
    ("linux_nvidia_1_l4_23034mib.json", "a10g",
        "--model /models/llama-8b --served-model-name chat --host 127.0.0.1 --port 9000 --max-model-len 4096 "
        "--max-num-seqs 16 --dtype auto --gpu-memory-utilization 0.9 --tensor-parallel-size 1 --quantization "
        "awq --enable-lora --max-loras 4 --max-lora-rank 16 --no-enable-log-requests "
        "--disable-uvicorn-access-log",
        'qlora-4bit', ['lora-bf16', 'qlora-4bit']),
    # RTX 3060: GGUF offloaded to llama.cpp, QLoRA
    ("linux_nvidia_1_rtx_3060_12288mib.json", "consumer-gpu",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 4 "
        "--cont-batching --threads 4 --n-gpu-layers all --metrics --no-webui --slots --threads-http 16",
        'qlora-4bit', ['qlora-4bit']),
    # RTX 4090: the same consumer profile
    ("linux_nvidia_1_rtx_4090_24564mib.json", "consumer-gpu",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 4 "
        "--cont-batching --threads 4 --n-gpu-layers all --metrics --no-webui --slots --threads-http 16",
        'qlora-4bit', ['qlora-4bit']),
    # T4 (no bf16): QLoRA in fp16
    ("linux_nvidia_1_tesla_t4_15360mib.json", "t4",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 4 "
        "--cont-batching --threads 4 --n-gpu-layers all --metrics --no-webui --slots --threads-http 16",
        'qlora-4bit', ['qlora-4bit']),
    # two H100: tensor parallel over both
    ("linux_nvidia_2_h100_80gb_hbm3_81559mib.json", "h100",
        "--model /models/llama-8b --served-model-name chat --host 127.0.0.1 --port 9000 --max-model-len 8192 "
        "--max-num-seqs 64 --dtype auto --gpu-memory-utilization 0.9 --tensor-parallel-size 2 --quantization "
        "fp8 --enable-lora --max-loras 8 --max-lora-rank 64 --no-enable-log-requests "
        "--disable-uvicorn-access-log",
        'lora-bf16', ['full', 'lora-bf16']),
    # driver not loaded: the CPU profile
    ("linux_nvidia_driver_not_loaded.json", "cpu",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 8 "
        "--cont-batching --threads 4 --n-gpu-layers 0 --poll 0 --metrics --no-webui --slots --threads-http 24",
        None, ['lora-cpu']),
    # driver/library mismatch: the CPU profile
    ("linux_nvidia_rm_version_mismatch.json", "cpu",
        "--model /models/llama-8b --alias chat --host 127.0.0.1 --port 9000 --ctx-size 16384 --parallel 8 "
        "--cont-batching --threads 4 --n-gpu-layers 0 --poll 0 --metrics --no-webui --slots --threads-http 24",
        None, ['lora-cpu']),
]


def _model(fmt: str) -> ModelRecord:
    return ModelRecord(id="m", name="llama-8b", kind=fmt, format=fmt, path="/models/llama-8b", sha256="0" * 64,
                       size_bytes=1, architecture="llama", params=int(PARAMS), context_length=8192,
                       quantization="Q4_K_M" if fmt == "gguf" else None, parent_id=None, source="test",
                       metadata={}, created_at=0.0)


@pytest.mark.parametrize(("fixture", "profile_name", "argv", "method", "tried"), TABLE, ids=[r[0] for r in TABLE])
def test_machine_to_argv_and_method(profiles: list[Profile], tmp_path: Path, fixture: str, profile_name: str,
                                    argv: str, method: str | None, tried: list[str]) -> None:
    report = recorded_machine(fixture, tmp_path)
    selection = select_profile(profiles, report)
    assert selection.name == profile_name, selection.reason
    backend = selection.profile.serving.backend
    planner = FitPlanner(selection, report, {"llamacpp": llamacpp.LlamaCppBackend(tmp_path),
                                             "vllm": vllm.VllmBackend(tmp_path)})
    plan = planner.plan("chat", _model("hf" if backend == "vllm" else "gguf"), DeploymentParams(threads=4), backend,
                        check=False)
    args, injected = injected_arguments(vllm.BUILDERS if backend == "vllm" else llamacpp.BUILDERS,
                                        plan.launch_spec(9000), frozenset())
    assert " ".join(args) == argv
    assert " ".join(injected.values()) == argv  # every argument is recorded under its group
    choice = choose_method(shape_for(PARAMS), ladder(selection.profile.training), report)
    assert [rung.recipe.method for rung in choice.tried] == tried
    assert (choice.chosen.recipe.method if choice.chosen else None) == method
    for reason, rung in zip(choice.reasons, choice.tried, strict=True):
        fits = rung is choice.chosen
        assert reason.startswith(f"{rung.recipe.method}: training needs ")
        assert ("fits (chosen)" in reason) == fits and ("does NOT fit" in reason) == (not fits)


def test_llamacpp_offloads_as_many_layers_as_the_gpu_holds(profiles: list[Profile], tmp_path: Path) -> None:
    # A 32B Q4_K_M (18 GiB + 6 GiB KV) on a 12 GiB RTX 3060: the planner puts 34 of its 64 layers on the GPU.
    report = recorded_machine("linux_nvidia_1_rtx_3060_12288mib.json", tmp_path)
    planner = FitPlanner(select_profile(profiles, report), report, {"llamacpp": llamacpp.LlamaCppBackend(tmp_path)})
    big = _model("gguf").model_copy(update={"params": int(32e9)})
    plan = planner.plan("chat", big, DeploymentParams(), "llamacpp")
    assert plan.settings.gpu_layers == 34 and plan.estimate.fits
    assert "53% of the layers" in plan.estimate.message
    args = injected_arguments(llamacpp.BUILDERS, plan.launch_spec(9000), frozenset())[0]
    assert "--n-gpu-layers 34" in " ".join(args)
    # What the deployment sets itself is kept; a model that fits whole keeps "all".
    pinned = planner.plan("chat", big, DeploymentParams(gpu_layers=10), "llamacpp")
    assert pinned.settings.gpu_layers == 10
    assert planner.plan("chat", _model("gguf"), DeploymentParams(), "llamacpp").settings.gpu_layers == -1
