"""The one rule for the names operators give things (models, datasets, deployments, adapters, served names):
lower case, digits and `._-`, starting with a letter or digit, at most 64 characters. They end up in paths,
URLs, metric labels and backend command lines, so nothing else is allowed."""

from __future__ import annotations

import re

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_RULE = "lower case letters, digits and . _ -, starting with a letter or digit, at most 64 characters"


def is_valid_name(name: str) -> bool:
    return bool(NAME.match(name))
