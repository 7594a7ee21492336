from __future__ import annotations

import pytest

from appliance.guardrails.engine import Guardrails
from appliance.guardrails.pii import BUILTIN_ENTITIES
from appliance.guardrails.policy import GuardrailPolicy

ALL = list(BUILTIN_ENTITIES)


def policy(**fields: object) -> GuardrailPolicy:
    return GuardrailPolicy.model_validate(fields)


@pytest.fixture(scope="session")
def guarded() -> Guardrails:
    """Every built-in entity masked both ways and in capture, two deny rules (keywords, regex)."""
    return Guardrails(policy(
        deny=[{"name": "violence", "keywords": ["kill you", "bomb"]},
              {"name": "secrets", "regex": r"\bpassword\s*[:=]\s*\S+"}],
        redact={"input": [*ALL, "EMPLOYEE_ID"], "output": [*ALL, "EMPLOYEE_ID"], "capture": [*ALL, "EMPLOYEE_ID"]},
        custom_entities=[{"label": "EMPLOYEE_ID", "regex": r"\bEMP-\d{6}\b"}],
    ))
