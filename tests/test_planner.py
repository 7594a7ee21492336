"""The memory planner against figures worked out by hand (the arithmetic is in each comment)."""

from __future__ import annotations

import pytest

from appliance.backends.registry import serving_memory
from appliance.plan import ModelPlan, lora_parameters, make_plan, parse_params, plan_training, shape_for
from appliance.plan.shapes import REFERENCE_SHAPES
from appliance.profiles import select_profile
from appliance.profiles.select import SelectionError
from tests.conftest import recorded_machine

GIB = 1024**3
SMOL = REFERENCE_SHAPES[0]


def _profile(profiles, name, **training):
    profile = next(p for p in profiles if p.name == name)
    if training:
        profile = profile.model_copy(update={"training": profile.training.model_copy(update=training)})
    return profile


def _plan(shape, selection, report) -> ModelPlan:
    """The plan `slm-appliance plan` makes: memory of the profile's own serving backend."""
    return make_plan(shape, selection, report, serving_memory(selection.profile.serving.backend))


@pytest.mark.parametrize(("text", "value"), [("135M", 135e6), ("7B", 7e9), ("1.5b", 1.5e9), ("8000", 8000.0)])
def test_parse_params(text, value):
    assert parse_params(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "7X", "-1B", "0"])
def test_parse_params_rejects(bad):
    with pytest.raises(ValueError):
        parse_params(bad)


def test_lora_parameters_of_smollm2():
    # per layer: q 576+576, k 576+192, v 576+192, o 576+576, gate/up 576+1536 each, down 1536+576
    # = 10176; × r 16 × 30 layers = 4,884,480 (PEFT reports 4.88 M trainable for this setup)
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert lora_parameters(SMOL, 16, modules) == 4_884_480


def test_cpu_lora_training_of_smollm2_matches_measured_rss(profiles):
    # batch 4 × 77 tokens, fp32, no checkpointing (the run measured at 2.3-2.5 GB peak RSS):
    #   weights     134.5e6 × 4                                       =   538,000,000
    #   LoRA state  4,884,480 × 16                                    =    78,151,680
    #   activations 4·77·576 · (34 + 5·9·77/576) · 2 bytes · 30 layers =   425,945,520
    #   logits      4·77 · 49152 · 4 bytes · 2                        =   121,110,528
    #   runtime     1.2 GiB                                           = 1,288,490,188
    profile = _profile(profiles, "cpu", max_seq_length=77)
    estimate = plan_training(SMOL, profile.training, recorded_machine("linux_cpu_only_nvml_library_not_found.json"))
    assert [line.bytes for line in estimate.lines] == [538_000_000, 78_151_680, 425_945_520, 121_110_528,
                                                        1_288_490_188]
    assert estimate.total_bytes == 2_451_697_916
    assert 2.3e9 <= estimate.total_bytes <= 2.5e9
    assert estimate.target == "RAM available"


def test_llamacpp_serving_of_7b_q4_k_m(profiles):
    # weights 7e9 × 4.85 bits / 8 = 4,243,750,000
    # KV cache: 2 (K,V) × 32 layers × 1024 (8 kv heads × 128) × 2 bytes = 131,072 B/token
    #           × 2048 context × 8 slots = 2,147,483,648
    # compute buffers 0.25 GiB = 268,435,456
    shape = shape_for(7e9)
    assert shape.name == "Mistral-7B"
    estimate = serving_memory("llamacpp").estimate(shape, _profile(profiles, "cpu").serving, recorded_machine(
        "linux_cpu_only_nvml_library_not_found.json"), "Q4_K_M")
    assert [line.bytes for line in estimate.lines] == [4_243_750_000, 2_147_483_648, 268_435_456]
    assert estimate.total_bytes == 6_659_669_104


def test_vllm_fp8_on_two_h100s(profiles):
    # weights 8e9 × 1 byte / 2 GPUs = 4e9; KV one 8192-token sequence: 131,072 × 8192 / 2 = 536,870,912
    # runtime 1 GiB; capacity 81559 MiB × 0.9 = 76,965,614,387 bytes (int)
    report = recorded_machine("linux_nvidia_2_h100_80gb_hbm3_81559mib.json")
    selection = select_profile(profiles, report)
    estimate = serving_memory("vllm").estimate(shape_for(8e9), selection.profile.serving, report, "fp8",
                                               selection.tensor_parallel_size)
    assert [line.bytes for line in estimate.lines] == [4_000_000_000, 536_870_912, GIB]
    assert estimate.available_bytes == int(81559 * 1024 * 1024 * 0.9)
    assert estimate.fits


def test_full_fine_tune_is_sixteen_bytes_per_param(profiles):
    report = recorded_machine("linux_nvidia_1_h100_80gb_hbm3_81559mib.json")
    estimate = plan_training(shape_for(1e9), _profile(profiles, "h100").training, report)
    assert estimate.lines[0].bytes == 16_000_000_000
    assert estimate.available_bytes == 81559 * 1024 * 1024


def test_plan_refuses_with_numbers(profiles):
    # QLoRA of an 8B fits 12 GiB (11.26 GiB with fused attention); a 14B does not.
    report = recorded_machine("linux_nvidia_1_rtx_3060_12288mib.json")
    plan = _plan(shape_for(14e9), select_profile(profiles, report), report)
    assert not plan.can_train
    assert "does NOT fit" in plan.training.message and "VRAM per GPU (12288 MiB) 12.00 GiB" in plan.training.message
    assert plan.can_serve


def test_small_models_stay_at_eight_bits(profiles):
    report = recorded_machine("linux_cpu_only_nvml_library_not_found.json")
    selection = select_profile(profiles, report)
    assert _plan(shape_for(135e6), selection, report).quantization == "Q8_0"
    assert _plan(shape_for(3e9), selection, report).quantization == "Q4_K_M"


def test_profile_size_limit_blocks_training(profiles):
    report = recorded_machine("linux_cpu_only_nvml_library_not_found.json")
    plan = _plan(shape_for(3e9), select_profile(profiles, report), report)
    assert not plan.can_train
    assert any("trains base models up to 1.5B" in note for note in plan.notes)


def test_unknown_vram_cannot_be_confirmed(profiles):
    report = recorded_machine("linux_jetson_orin_nvgpu.json")
    profile = _profile(profiles, "consumer-gpu")
    estimate = plan_training(shape_for(1e9), profile.training, report)
    assert not estimate.fits and "unknown" in estimate.message


def test_h100_ladder_takes_lora_bf16_when_full_does_not_fit(profiles):
    report = recorded_machine("linux_nvidia_1_h100_80gb_hbm3_81559mib.json")
    plan = _plan(shape_for(7e9), select_profile(profiles, report), report)
    assert plan.can_train and plan.training_method == "lora-bf16"
    assert plan.method_reasons[0].startswith("full: training needs ") and "does NOT fit" in plan.method_reasons[0]
    assert plan.method_reasons[1].endswith("fits (chosen)") and len(plan.method_reasons) == 2


def test_profiles_refuse_what_the_gpu_cannot_do(profiles):
    # A T4 (cc 7.5) has no bf16 and no FP8: pinning the h100 profile there is refused, naming both reasons' first.
    report = recorded_machine("linux_nvidia_1_tesla_t4_15360mib.json")
    with pytest.raises(SelectionError, match=r"training precision bf16 needs compute capability ≥ 8; Tesla T4 has 7.5"):
        select_profile(profiles, report, pinned="h100")
    # An A100 (cc 8.0) trains in bf16 but has no FP8: the h100 profile's FP8 serving is refused.
    a100 = recorded_machine("linux_nvidia_1_a100_sxm4_80gb_81920mib.json")
    with pytest.raises(SelectionError, match=r"FP8 serving needs compute capability ≥ 8.9; .* has 8.0"):
        select_profile(profiles, a100, pinned="h100")
