"""The example alert rules (docs/alerts/) parse, and every metric they name is one the daemon exports: its
base name is declared in appliance/ (a Counter's samples end in `_total`, a Histogram's in `_bucket`, `_sum`,
`_count`)."""

from __future__ import annotations

import re

import pytest

from tests.helpers import REPO

RULES = REPO / "docs" / "alerts" / "slm-appliance.rules.yml"
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def _declared() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "appliance").rglob("*.py"):
        names.update(re.findall(r'"(slm_[a-z0-9_]+)"', path.read_text()))
    return names


def test_the_rules_parse_and_name_only_exported_metrics() -> None:
    yaml = pytest.importorskip("yaml")
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 8 and all({"alert", "expr", "labels", "annotations"} <= rule.keys() for rule in rules)
    declared = _declared()
    used = {name for rule in rules for name in re.findall(r"\bslm_[a-z0-9_]+", rule["expr"])}
    unknown = []
    for name in sorted(used):
        base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s) and name[: -len(s)] in declared), name)
        if base not in declared:
            unknown.append(name)
    assert not unknown, f"metrics no module declares: {unknown}"
    for needed in ("slm_live_watch_rollbacks_total", "slm_live_watch_regressed", "slm_shadow_agreement_mean",
                   "slm_shadow_dropped_total", "slm_capture_dropped_total", "slm_guardrail_blocks_total",
                   "slm_backend_restarts_total"):
        assert needed in used, needed
