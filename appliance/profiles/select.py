"""Profile selection as a pipeline: evaluate every profile against the box (each rule says why it held or
not), keep the matches, and pick the most specific. The same messages feed `--explain`, the API and the TUI."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, Field

from appliance.errors import ApplianceError
from appliance.hardware.models import ComputeUnit, HardwareReport
from appliance.profiles.schema import MatchRules, Profile


class ProfileVerdict(BaseModel):
    name: str
    matched: bool
    specificity: int
    reasons: list[str] = Field(default_factory=list)


class Selection(BaseModel):
    profile: Profile
    pinned: bool
    reason: str
    verdicts: list[ProfileVerdict]
    tensor_parallel_size: int = 1

    @property
    def name(self) -> str:
        return self.profile.name


class SelectionError(ApplianceError):
    """A pinned profile does not exist or asks for what the GPUs cannot do."""

    status, code = 404, "profile_not_found"


def _mib(unit: ComputeUnit) -> str:
    return "unknown" if unit.memory_mib is None else f"{unit.memory_mib} MiB"


def _check_units(rules: MatchRules, units: list[ComputeUnit]) -> tuple[list[str], str | None]:
    """Per-GPU rules. Returns (what held, first failure or None)."""
    held: list[str] = []
    for unit in units:
        label = unit.name + (f" MIG {unit.mig_profile}" if unit.is_mig_slice and unit.mig_profile else "")
        if rules.mig is not None and unit.is_mig_slice != rules.mig:
            return held, f"{label} is {'a MIG slice' if unit.is_mig_slice else 'a whole GPU'}"
        if rules.gpu_name_patterns:
            if not any(fnmatchcase(unit.name, p) for p in rules.gpu_name_patterns):
                return held, f"GPU name {unit.name!r} matches none of {rules.gpu_name_patterns}"
            held.append(f"{unit.name!r} matches the name patterns")
        if rules.compute_capability is not None:
            cc = unit.compute_capability
            if cc is None:
                return held, f"{label}: compute capability unknown"
            if not rules.compute_capability.contains(float(cc)):
                return held, f"{label}: compute capability {cc} outside {rules.compute_capability.describe()}"
            held.append(f"cc {cc} in {rules.compute_capability.describe()}")
        if rules.vram_per_gpu_gib is not None:
            if unit.memory_mib is None:
                return held, f"{label}: VRAM unknown (NVML: Not Supported)"
            if not rules.vram_per_gpu_gib.contains(unit.memory_mib / 1024):
                return held, f"{label}: VRAM {_mib(unit)} outside {rules.vram_per_gpu_gib.describe('GiB')} range"
            held.append(f"VRAM {_mib(unit)} in {rules.vram_per_gpu_gib.describe('GiB')}")
    return held, None


# Compute capability what a profile asks for needs: bf16 arrived with Ampere (8.0), FP8 with Ada/Hopper (8.9).
PRECISION_MIN_CC = {"bf16": 8.0}
QUANTIZATION_MIN_CC = {"fp8": 8.9}


def capability_refusal(profile: Profile, units: list[ComputeUnit]) -> str | None:
    """Why these GPUs cannot do what the profile asks (training precision, serving quantization), or None."""
    needs = [(f"training precision {profile.training.precision}", PRECISION_MIN_CC.get(profile.training.precision)),
             (f"{profile.quantization.format.upper()} serving", QUANTIZATION_MIN_CC.get(profile.quantization.format))]
    for unit in units:
        cc = float(unit.compute_capability or 0)
        for what, minimum in needs:
            if minimum is not None and cc < minimum:
                return f"{what} needs compute capability ≥ {minimum:g}; {unit.name} has {unit.compute_capability}"
    return None


def evaluate(profile: Profile, hardware: HardwareReport) -> ProfileVerdict:
    """Does `profile` fit `hardware`? The verdict's reasons say which rule decided."""
    rules = profile.match
    units = hardware.compute_units()
    verdict = ProfileVerdict(name=profile.name, matched=False, specificity=rules.specificity())
    if rules.gpu_count is not None:
        count_text = f"{len(units)} GPU{'s' if len(units) != 1 else ''}"
        if not rules.gpu_count.contains(len(units)):
            verdict.reasons.append(f"rejected, found {count_text}, needs {rules.gpu_count.describe()}")
            return verdict
        verdict.reasons.append(f"{count_text} in {rules.gpu_count.describe()}")
    elif not units:
        verdict.reasons.append("rejected, needs a GPU and none was found")
        return verdict
    held, failure = _check_units(rules, units)
    verdict.reasons.extend(dict.fromkeys(held))  # one line per distinct fact on multi-GPU boxes
    failure = failure or capability_refusal(profile, units)
    if failure:
        verdict.reasons.append(f"rejected, {failure}")
        return verdict
    verdict.matched = True
    return verdict


def _tensor_parallel(profile: Profile, hardware: HardwareReport) -> int:
    setting = profile.serving.tensor_parallel_size
    if setting != "auto":
        return setting
    units = hardware.compute_units()
    # MIG slices cannot be joined by tensor parallelism; whole GPUs can.
    return 1 if not units or any(u.is_mig_slice for u in units) else len(units)


def select_profile(profiles: list[Profile], hardware: HardwareReport, pinned: str | None = None) -> Selection:
    """Choose the profile for `hardware`: the pinned one, else the most specific match, else the fallback.

    Ties on specificity break by name so the choice is deterministic.

    Raises:
        SelectionError: `pinned` names no loaded profile.
    """
    verdicts = [evaluate(p, hardware) for p in profiles]
    by_name = {p.name: p for p in profiles}
    if pinned is not None:
        if pinned not in by_name:
            raise SelectionError(f"pinned profile {pinned!r} does not exist (have: {', '.join(sorted(by_name))})")
        matched = next(v.matched for v in verdicts if v.name == pinned)
        refused = capability_refusal(by_name[pinned], hardware.compute_units())
        if refused:
            raise SelectionError(f"pinned profile {pinned!r} cannot run on this box: {refused}")
        reason = f"{pinned}: pinned in the config" + ("" if matched else " (its match rules do not hold here)")
        chosen = by_name[pinned]
        return Selection(
            profile=chosen, pinned=True, reason=reason, verdicts=verdicts,
            tensor_parallel_size=_tensor_parallel(chosen, hardware),
        )
    matches = sorted((v for v in verdicts if v.matched), key=lambda v: (-v.specificity, v.name))
    if matches:
        best = matches[0]
        others = [v.name for v in matches[1:]]
        reason = f"{best.name}: most specific match (specificity {best.specificity})" + (
            f"; also matched: {', '.join(others)}" if others else ""
        )
        chosen = by_name[best.name]
    else:
        chosen = next(p for p in profiles if p.match.fallback)
        reason = f"{chosen.name}: no profile matched this hardware; using the fallback profile"
    return Selection(
        profile=chosen, pinned=False, reason=reason, verdicts=verdicts,
        tensor_parallel_size=_tensor_parallel(chosen, hardware),
    )
