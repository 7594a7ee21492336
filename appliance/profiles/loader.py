"""Loads and validates every profile file; an invalid file is an error naming the file and the field. The
serving backends' own rules come in as `backends` (`appliance.backends.registry.backend_rules()`): this layer
sits below them and names none."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from appliance.errors import ApplianceError
from appliance.profiles.schema import BackendRules, Profile
from appliance.validation import all_problems


class ProfileError(ApplianceError):
    """A profile file is unreadable or invalid, or the set of profiles is inconsistent."""


def load_profile(path: Path, backends: Mapping[str, BackendRules]) -> Profile:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{path}: {all_problems(exc, '(file)')}") from exc
    if profile.name != path.stem:
        raise ProfileError(f"{path}: name: {profile.name!r} must equal the file name {path.stem!r}")
    problems = profile.backend_problems(backends)
    if problems:
        raise ProfileError(f"{path}: {'; '.join(problems)}")
    return profile


def load_profiles(directory: Path, backends: Mapping[str, BackendRules]) -> list[Profile]:
    """All `*.toml` profiles in `directory`, sorted by name.

    Raises:
        ProfileError: missing folder, no profile, an invalid file, or not exactly one fallback profile.
    """
    if not directory.is_dir():
        raise ProfileError(f"{directory}: profiles folder not found")
    profiles = [load_profile(path, backends) for path in sorted(directory.glob("*.toml"))]
    if not profiles:
        raise ProfileError(f"{directory}: no *.toml profile files")
    fallbacks = [p.name for p in profiles if p.match.fallback]
    if len(fallbacks) != 1:
        raise ProfileError(
            f"{directory}: exactly one profile must set match.fallback = true (found: {fallbacks or 'none'})"
        )
    return profiles
