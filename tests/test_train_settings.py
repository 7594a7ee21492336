"""Fine-tune settings: overrides resolve over the profile once, with one set of bounds; refusals name the key;
the resolved settings survive the trip through the job store and the worker's spec file."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from appliance.jobs.events import JobFailed
from appliance.jobs.handlers.finetune import _resolved_training
from appliance.jobs.kinds.finetune import FinetuneParams
from appliance.profiles import Profile
from appliance.training.settings import OVERRIDABLE, OverrideRefused, ResolvedTraining, resolve


def _cpu(profiles: list[Profile]) -> Profile:
    return next(p for p in profiles if p.name == "cpu")


def test_overrides_apply_over_the_profile_and_the_run_defaults(profiles) -> None:
    cpu = _cpu(profiles)
    resolved = resolve(cpu.training, {"lora_r": 8, "max_steps": 5, "learning_rate": 1e-3}, 6, "cpu")
    assert (resolved.lora_r, resolved.max_steps, resolved.learning_rate) == (8, 5, 1e-3)
    assert resolved.batch_size == cpu.training.batch_size and resolved.target_modules == cpu.training.target_modules
    assert (resolved.method, resolved.trainer, resolved.precision) == ("lora-cpu", "peft", "fp32")
    assert (resolved.epochs, resolved.checkpoint_every, resolved.seed, resolved.threads) == (1.0, 10, 0, 6)
    assert resolve(cpu.training, {}, 1).lora_r == cpu.training.lora_r


def test_every_shipped_profile_resolves_without_overrides(profiles) -> None:
    # The profiles and the jobs share one set of bounds: no shipped profile sits outside them.
    for profile in profiles:
        resolved = resolve(profile.training, {}, 4, profile.name)
        assert resolved.method == profile.training.method and resolved.max_seq_length == profile.training.max_seq_length


REFUSED = [
    # (overrides, the key named, text of the message)
    ({"lora_r": 0}, "lora_r", "Input should be greater than 0"),
    ({"lora_r": 512}, "lora_r", "less than or equal to 256"),
    ({"learning_rate": 0.5}, "learning_rate", "less than or equal to 0.01"),
    ({"batch_size": 1000}, "batch_size", "less than or equal to 256"),
    ({"target_modules": []}, "target_modules", "at least 1 item"),
    ({"max_steps": "many"}, "max_steps", "valid integer"),
    ({"checkpoint_every": 0}, "checkpoint_every", "greater than or equal to 1"),
    ({"lora_rank": 8}, "lora_rank", "unknown setting; overridable: batch_size, checkpoint_every, epochs"),
    # Fixed by the profile: the method, its trainer and precision, the profile's limits, the box's cores.
    ({"method": "full"}, "method", "set by the hardware profile (cpu), not overridable per job"),
    ({"precision": "bf16"}, "precision", "set by the hardware profile (cpu)"),
    ({"threads": 64}, "threads", "set by the hardware profile (cpu)"),
    ({"max_base_params_b": 70}, "max_base_params_b", "set by the hardware profile (cpu)"),
]


@pytest.mark.parametrize(("overrides", "key", "message"), REFUSED, ids=[r[1] for r in REFUSED])
def test_bad_overrides_are_refused_naming_the_key(profiles, overrides, key, message) -> None:
    with pytest.raises(OverrideRefused) as info:
        resolve(_cpu(profiles).training, {"max_steps": 5, **overrides}, 2, "cpu")
    assert info.value.key == key and message in info.value.message, info.value


def test_resolved_settings_round_trip_as_the_worker_reads_them(profiles) -> None:
    resolved = resolve(_cpu(profiles).training, {"lora_r": 8, "neftune_noise_alpha": 5.0}, 3, "cpu")
    # Pre-flight stores model_dump(mode="json") in the job params; the runner writes them to spec.json.
    stored = json.loads(json.dumps({"training": resolved.model_dump(mode="json"), "profile": "cpu"}))
    assert _resolved_training(stored) == resolved
    assert stored["training"]["target_modules"] == list(resolved.target_modules)


def test_worker_refuses_settings_stored_in_another_shape(profiles) -> None:
    # What pre-flight stored before the settings were resolved into one model: the profile's table alone.
    old = _cpu(profiles).training.model_dump()
    with pytest.raises(JobFailed, match=r"stored training settings are not readable .*submit the job again"):
        _resolved_training({"training": old})
    with pytest.raises(JobFailed, match="not readable"):
        _resolved_training({})


def test_resolved_settings_are_whole_and_frozen() -> None:
    with pytest.raises(ValidationError, match="threads"):
        ResolvedTraining.model_validate({"method": "lora-cpu", "trainer": "peft", "precision": "fp32"})
    with pytest.raises(ValidationError, match="lora-cpu needs"):
        ResolvedTraining(method="lora-cpu", trainer="peft", precision="bf16", threads=1)
    settings = ResolvedTraining(method="lora-cpu", trainer="peft", precision="fp32", threads=1, batch_size=2,
                                gradient_accumulation=3)
    assert settings.sequences_per_step == 6
    with pytest.raises(ValidationError, match="frozen"):
        settings.lora_r = 4  # type: ignore[misc]


def test_finetune_params_keep_the_submitted_shape() -> None:
    body = {"base_model": "m", "dataset": "d", "adapter_name": None, "golden": None,
            "overrides": {"max_steps": 50, "lora_r": 8}}
    assert FinetuneParams.model_validate(body).model_dump() == body
    assert FinetuneParams.model_validate({"base_model": "m", "dataset": "d"}).overrides == {}
    with pytest.raises(ValidationError):
        FinetuneParams.model_validate({"base_model": "m"})  # dataset is required
    # The overrides' schema documents every overridable field with its bounds and description.
    schema = FinetuneParams.model_json_schema()["properties"]["overrides"]
    assert set(schema["properties"]) == set(OVERRIDABLE) and schema["additionalProperties"] is False
    assert schema["properties"]["lora_r"]["maximum"] == 256 and schema["properties"]["lora_r"]["description"]
