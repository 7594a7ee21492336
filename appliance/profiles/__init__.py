"""Hardware profiles: declarative TOML files, their schema, and explainable selection."""

from appliance.profiles.loader import ProfileError, load_profile, load_profiles
from appliance.profiles.schema import Profile
from appliance.profiles.select import ProfileVerdict, Selection, SelectionError, evaluate, select_profile

__all__ = [
    "Profile",
    "ProfileError",
    "ProfileVerdict",
    "Selection",
    "SelectionError",
    "evaluate",
    "load_profile",
    "load_profiles",
    "select_profile",
]
