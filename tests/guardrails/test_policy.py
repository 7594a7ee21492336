"""The policy refuses at creation what it could not apply: every message names the rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from appliance.guardrails.policy import GuardrailPolicy
from tests.guardrails.conftest import policy


def _refused(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        policy(**fields)
    return str(caught.value)


@pytest.mark.parametrize("pattern", [
    r"(a+)+$",  # the classic: exponential on "aaaa…!"
    r"(a|aa)*b",  # alternation of different lengths under a star (the parser factors it into a(?:|a))
    r"(.*a){12}",  # a star inside a bounded repeat: polynomial of degree 12
    r"(x+x+)+y",
    r"(\w+\s?)+$",
    r"(a*)*",
    r"(\w|\d\d)+$",  # branches that can match the same text ("11": \w\w or \d\d) under a repeat
])
def test_catastrophic_regex_refused_statically(pattern: str) -> None:
    message = _refused(deny=[{"name": "bad-rule", "regex": pattern}])
    assert "deny rule 'bad-rule'" in message and "backtrack catastrophically" in message


@pytest.mark.parametrize("pattern", [
    r".*a.*a.*a.*b",  # polynomial: caught by the timed probes
    r"(\w+\.)+com",  # quadratic in an unanchored search
])
def test_slow_regex_refused_by_timed_probes(pattern: str) -> None:
    message = _refused(deny=[{"name": "slow-rule", "regex": pattern}])
    assert "deny rule 'slow-rule'" in message and "too slow" in message


@pytest.mark.parametrize("pattern", [
    r"ignore[^\n]{0,80}(previous|prior)[^\n]{0,80}instructions",
    r"\bpassword\s*[:=]\s*\S+",
    r"kill(?:\s+\w+){0,3}\s+you",
    r"([a-f0-9]{1,4}:){7}[a-f0-9]{1,4}",  # nested but unambiguous: ':' ends each group
    r"(cat|car)+s",  # the parser factors it into ca[tr]: no ambiguity left
    r"(?i)secret\s+project\s+\w+",  # a leading global flag is taken off and applied
    r"\b(?:\d{3}[- ]?){2}\d{4}\b",
])
def test_safe_regexes_pass(pattern: str) -> None:
    checked = policy(deny=[{"name": "fine", "regex": pattern}])
    assert checked.deny[0].regex == pattern


def test_custom_entity_regex_checked_like_a_rule() -> None:
    assert "entity 'BADGE'" in _refused(custom_entities=[{"label": "BADGE", "regex": r"(\d+)+x"}])
    assert "empty text" in _refused(custom_entities=[{"label": "BADGE", "regex": r"\d*"}])
    assert "does not compile" in _refused(deny=[{"name": "broken", "regex": r"(unclosed"}])


@pytest.mark.parametrize(("fields", "expected"), [
    ({"deny": [{"name": "a", "keywords": ["x"]}, {"name": "a", "keywords": ["y"]}]}, "'a' is defined twice"),
    ({"deny": [{"name": "Bad Name", "keywords": ["x"]}]}, "rule name 'Bad Name'"),
    ({"deny": [{"name": "both", "keywords": ["x"], "regex": "x"}]}, "exactly one of keywords and regex"),
    ({"deny": [{"name": "neither"}]}, "exactly one of keywords and regex"),
    ({"deny": [{"name": "empty", "keywords": []}]}, "non-empty list"),
    ({"deny": [{"name": "blank", "keywords": ["ok", "  "]}]}, "non-blank"),
    ({"redact": {"output": ["SSN"]}}, "unknown entity 'SSN'"),
    ({"custom_entities": [{"label": "EMAIL", "regex": "x@y"}]}, "built-in entity"),
    ({"custom_entities": [{"label": "lower", "regex": "x"}]}, "upper case"),
    ({"guard": {"deployment": "llama-guard"}}, "on_error"),  # fail-open or fail-closed: no default
    ({"limits": {"max_messages": 0}}, "greater than or equal to 1"),
    ({"deny": [{"name": "x", "keywords": ["y"], "severity": 3}]}, "Extra inputs are not permitted"),
])
def test_refusals_say_what_is_wrong(fields: dict[str, object], expected: str) -> None:
    assert expected in _refused(**fields)


def test_custom_entity_usable_in_redaction_and_schema_is_described() -> None:
    checked = policy(custom_entities=[{"label": "EMPLOYEE_ID", "regex": r"EMP-\d{6}"}],
                     redact={"capture": ["EMPLOYEE_ID", "EMAIL"]},
                     guard={"deployment": "llama-guard", "on_error": "fail-closed"})
    assert checked.guard is not None and checked.guard.directions == ["input"]
    schema = GuardrailPolicy.model_json_schema()
    for name, model in schema["$defs"].items():
        for field, spec in model["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
