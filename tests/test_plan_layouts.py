"""The planner for the new training steps and layouts, against figures worked out by hand: a preference step
(chosen and rejected through the policy, the frozen reference forward unless precomputed), KTO and ORPO; data
parallel per GPU (DDP), FSDP for a full fine-tune DDP cannot fit, CPU processes sharing the RAM; and the ladder
choosing precomputed reference log-probs only when the step would not fit otherwise."""

from __future__ import annotations

import pytest

from appliance.plan import plan_training, shape_for
from appliance.plan.ladder import choose_method, data_parallel_gpus, ladder
from appliance.plan.memory import MIB, Parallel
from appliance.plan.shapes import REFERENCE_SHAPES
from appliance.profiles import Profile
from appliance.profiles.schema import TrainingSettings
from tests.conftest import recorded_machine

SMOL = REFERENCE_SHAPES[0]
CPU = "linux_cpu_only_nvml_library_not_found.json"
TWO_H100 = "linux_nvidia_2_h100_80gb_hbm3_81559mib.json"


def _cpu_recipe(profiles: list[Profile]) -> TrainingSettings:
    return next(p for p in profiles if p.name == "cpu").training.model_copy(update={"max_seq_length": 77})


def test_a_dpo_step_doubles_the_sequences_and_adds_the_reference_forward(profiles):
    # The SFT step of test_planner (batch 4 × 77 tokens: activations 425,945,520, logits 121,110,528); a DPO step
    # runs chosen and rejected (8 sequences: both doubled) and the reference's logits, no gradient:
    #   reference forward  8·77 · 49152 · 4 bytes = 121,110,528
    recipe, report = _cpu_recipe(profiles), recorded_machine(CPU)
    dpo = plan_training(SMOL, recipe, report, "preference")
    assert [(line.item, line.bytes) for line in dpo.lines[2:5]] == [
        ("activations (4×2×77 tokens)", 851_891_040), ("logits", 242_221_056), ("reference forward", 121_110_528)]
    assert dpo.total_bytes == 3_119_864_492
    precomputed = plan_training(SMOL, recipe, report, "preference", precompute_ref=True)
    assert "reference forward" not in [line.item for line in precomputed.lines]
    assert precomputed.total_bytes == 3_119_864_492 - 121_110_528
    assert plan_training(SMOL, recipe, report, "kto").total_bytes == dpo.total_bytes  # completion + KL completion
    assert plan_training(SMOL, recipe, report, "orpo").total_bytes == precomputed.total_bytes  # no reference


def test_a_full_preference_run_counts_its_frozen_reference_copy(profiles):
    report = recorded_machine("linux_nvidia_1_h100_80gb_hbm3_81559mib.json")
    recipe = next(p for p in profiles if p.name == "h100").training
    lines = {line.item: line.bytes for line in plan_training(shape_for(1e9), recipe, report, "preference").lines}
    assert lines["reference model (16-bit copy)"] == 2_000_000_000 and "reference forward" in lines


def test_the_ladder_precomputes_the_reference_only_when_the_step_does_not_fit(profiles):
    recipe, report = _cpu_recipe(profiles), recorded_machine(CPU)
    roomy = choose_method(SMOL, [recipe], report, step="preference", precompute_ref=None)
    assert roomy.chosen is not None and not roomy.chosen.precompute_ref
    # RAM between the two totals: only the precomputed step fits.
    tight = report.model_copy(update={"memory": report.memory.model_copy(update={"available_mib": 2900})})
    choice = choose_method(SMOL, [recipe], tight, step="preference", precompute_ref=None)
    assert choice.chosen is not None and choice.chosen.precompute_ref
    assert "reference forward" not in choice.chosen.estimate.message
    refused = choose_method(SMOL, [recipe], tight, step="preference", precompute_ref=False)
    assert refused.chosen is None and "reference forward" in refused.tried[0].estimate.message


def test_several_gpus_train_data_parallel_and_the_numbers_are_per_gpu(profiles):
    report = recorded_machine(TWO_H100)
    assert data_parallel_gpus(report) == 2
    recipe = next(p for p in profiles if p.name == "h100").training
    # A 1B full fine-tune fits each GPU whole: DDP, one process per GPU.
    small = choose_method(shape_for(1e9), ladder(recipe), report)
    assert small.chosen is not None and small.chosen.parallel == Parallel(2, "ddp")
    assert "per GPU, DDP over 2 GPUs; VRAM per GPU (81559 MiB)" in small.chosen.estimate.message
    # A 7B one does not (112 GB of weights, gradients and AdamW state alone): FSDP shards them over both.
    big = choose_method(shape_for(7e9), ladder(recipe), report)
    assert big.chosen is not None and big.chosen.recipe.method == "full"
    assert big.chosen.parallel == Parallel(2, "fsdp")
    assert big.chosen.estimate.lines[0].item == "weights+grads+AdamW (16 B/param, sharded over 2)"
    assert big.chosen.estimate.lines[0].bytes == 7_000_000_000 * 16 // 2


def test_cpu_processes_share_the_ram_and_mig_slices_train_alone(profiles):
    recipe, report = _cpu_recipe(profiles), recorded_machine(CPU)
    two = choose_method(SMOL, [recipe], report, processes=2)
    assert two.chosen is not None and two.chosen.parallel == Parallel(2, "ddp")
    assert two.chosen.estimate.available_bytes == report.memory.available_mib * MIB // 2
    assert "per process, DDP over 2 processes; RAM available ÷ 2" in two.chosen.estimate.message
    assert choose_method(SMOL, [recipe], report).chosen.parallel == Parallel()  # type: ignore[union-attr]
    mig = recorded_machine("linux_nvidia_1_a100_sxm4_40gb_mig_1_slice_3g20gb.json")
    assert data_parallel_gpus(mig) == 1


@pytest.mark.parametrize("step", ["preference", "kto", "orpo"])
def test_each_step_names_both_answers(profiles, step):
    estimate = plan_training(SMOL, _cpu_recipe(profiles), recorded_machine(CPU), step)
    assert "activations (4×2×77 tokens)" in estimate.message
