"""Profile files: validation errors name the file and the field; selection is deterministic and pinnable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance.backends.registry import backend_rules
from appliance.profiles import ProfileError, SelectionError, load_profile, load_profiles, select_profile
from tests.conftest import recorded_machine
from tests.helpers import REPO

CPU_TOML = (REPO / "profiles" / "cpu.toml").read_text()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


BROKEN = [
    # (what is broken, replacement, text the error must contain); each names file and field
    ("TOML syntax", ("[training]", "[training"), "invalid TOML"),
    ("unknown field", ("lora_r = 16", "lora_rank = 16"), "training.lora_rank: Extra inputs are not permitted"),
    ("unknown method", ('method = "lora-cpu"', 'method = "dpo"'), "training.method"),
    ("negative rank", ("lora_r = 16", "lora_r = -4"), "training.lora_r: Input should be greater than 0"),
    # A profile's hyperparameters have the bounds a job's overrides have (appliance/training/settings.py).
    ("rank above the bound", ("lora_r = 16", "lora_r = 512"),
     "training.lora_r: Input should be less than or equal to 256"),
    ("GGUF variant", ('variant = "Q4_K_M"', 'variant = "Q3_XYZ"'), "quantization: Value error, unknown GGUF variant"),
    ("backend vs format", ('backend = "llamacpp"', 'backend = "vllm"'), "serving"),
    ("wrong type", ("parallel_slots = 8", 'parallel_slots = "many"'), "serving.parallel_slots"),
    ("cpu method on bf16", ('precision = "fp32"', 'precision = "bf16"'), "lora-cpu needs"),
]


@pytest.mark.parametrize(("what", "change", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_invalid_profile_names_file_and_field(tmp_path, what, change, message):
    old, new = change
    assert old in CPU_TOML, what
    path = _write(tmp_path, "cpu", CPU_TOML.replace(old, new, 1))
    with pytest.raises(ProfileError) as info:
        load_profile(path, backend_rules())
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_name_must_match_file(tmp_path):
    path = _write(tmp_path, "other", CPU_TOML)
    with pytest.raises(ProfileError, match="must equal the file name 'other'"):
        load_profile(path, backend_rules())


def test_one_fallback_required(tmp_path):
    _write(tmp_path, "cpu", CPU_TOML)
    _write(tmp_path, "cpu2", CPU_TOML.replace('name = "cpu"', 'name = "cpu2"'))
    with pytest.raises(ProfileError, match="exactly one profile must set match.fallback"):
        load_profiles(tmp_path, backend_rules())


def test_missing_folder(tmp_path):
    with pytest.raises(ProfileError, match="profiles folder not found"):
        load_profiles(tmp_path / "nope", backend_rules())


def test_shipped_profiles_cover_the_required_set(profiles):
    assert {"cpu", "consumer-gpu", "a10g", "h100"} <= {p.name for p in profiles}


def test_every_profile_is_explained(profiles):
    selection = select_profile(profiles, recorded_machine("linux_nvidia_1_a10g_23028mib.json"))
    assert {v.name for v in selection.verdicts} == {p.name for p in profiles}
    reasons = {v.name: v.reasons[-1] for v in selection.verdicts}
    assert reasons["h100"] == "rejected, GPU name 'NVIDIA A10G' matches none of ['NVIDIA H100*']"
    assert reasons["datacenter-gpu"] == "rejected, NVIDIA A10G: VRAM 23028 MiB outside 32–∞ GiB range"
    assert reasons["cpu"] == "rejected, found 1 GPU, needs 0–0"


def test_pinned_profile_wins_and_says_so(profiles):
    report = recorded_machine("linux_nvidia_1_a10g_23028mib.json")
    selection = select_profile(profiles, report, pinned="cpu")
    assert selection.name == "cpu" and selection.pinned
    assert "pinned in the config (its match rules do not hold here)" in selection.reason
    with pytest.raises(SelectionError, match="pinned profile 'nope' does not exist"):
        select_profile(profiles, report, pinned="nope")


def test_selection_is_deterministic_on_ties(tmp_path, profiles):
    # Two profiles equally specific for the RTX 4090: the alphabetically first wins, every time.
    for path in (REPO / "profiles").glob("*.toml"):
        shutil.copy(path, tmp_path)
    text = (tmp_path / "consumer-gpu.toml").read_text().replace('name = "consumer-gpu"', 'name = "aaa-gpu"')
    _write(tmp_path, "aaa-gpu", text)
    loaded = load_profiles(tmp_path, backend_rules())
    report = recorded_machine("linux_nvidia_1_rtx_4090_24564mib.json")
    picks = {select_profile(list(reversed(loaded)) if i % 2 else loaded, report).name for i in range(4)}
    assert picks == {"aaa-gpu"}
