"""Each built-in entity on real values: valid ones masked, checksum failures (Luhn, mod-97) and look-alikes kept."""

from __future__ import annotations

import pytest

from appliance.guardrails.engine import Guardrails

MASKED = [
    # (entity, value): each one written the way people write it
    ("EMAIL", "bob.smith@example.com"),
    ("EMAIL", "o'brien+tag@mail.example.co.uk"),
    ("PHONE", "+1 415 555 2671"),
    ("PHONE", "(415) 555-2671"),
    ("PHONE", "+44 20 7946 0958"),
    ("PHONE", "+49 30 901820"),
    ("IBAN", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "GB82WEST12345698765432"),
    ("IBAN", "FR76 3000 6000 0112 3456 7890 189"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "5555-5555-5555-4444"),
    ("CREDIT_CARD", "378282246310005"),  # Amex, 15 digits
    ("IP", "192.168.1.20"),
    ("IP", "10.0.0.0/8"),
    ("IP", "2001:db8::8a2e:370:7334"),
    ("IP", "::ffff:10.0.0.1"),
    ("EMPLOYEE_ID", "EMP-123456"),  # the operator's own entity
]
KEPT = [
    "4111 1111 1111 1112",  # Luhn fails
    "DE89 3704 0044 0532 0130 01",  # mod-97 fails
    "GB82WEST12345698765431",  # mod-97 fails
    "999.168.1.20",  # not an address
    "bob@localhost",  # no top-level domain
    "bob@example.c0m",  # a TLD is letters
    "1234567",  # digits, no phone plan says so
    "2024-01-15",  # a date
    "version 1.2.3",
    "EMP-12345",  # custom entity: six digits
]


@pytest.mark.parametrize(("entity", "value"), MASKED, ids=[f"{e}:{v}" for e, v in MASKED])
def test_value_masked_in_every_scope(guarded: Guardrails, entity: str, value: str) -> None:
    text = f"Details: {value}. Thanks"
    assert guarded.redact(text, "capture") == f"Details: [{entity}]. Thanks"
    assert guarded.check(text, "input") == f"Details: [{entity}]. Thanks"
    assert guarded.check(text, "output") == f"Details: [{entity}]. Thanks"


@pytest.mark.parametrize("value", KEPT)
def test_invalid_values_not_masked(guarded: Guardrails, value: str) -> None:
    text = f"Details: {value}. Thanks"
    assert guarded.redact(text) == text


def test_an_ipv4_address_is_an_ip_not_a_phone(guarded: Guardrails) -> None:
    # Presidio tags an IPv4 address as a phone number too (score 0.4); here phonenumbers finds no valid number.
    assert guarded.redact("from 172.16.254.1 today") == "from [IP] today"


def test_an_iban_followed_by_words_keeps_only_the_iban(guarded: Guardrails) -> None:
    assert guarded.redact("DE89 3704 0044 0532 0130 00 ABC is mine") == "[IBAN] ABC is mine"


def test_several_values_in_one_text(guarded: Guardrails) -> None:
    text = "Mail a@b.io, call +1 415 555 2671, pay DE89370400440532013000 by 4111111111111111."
    assert guarded.redact(text) == "Mail [EMAIL], call [PHONE], pay [IBAN] by [CREDIT_CARD]."


def test_scopes_mask_only_their_entities() -> None:
    from tests.guardrails.conftest import policy

    rails = Guardrails(policy(redact={"input": ["EMAIL"], "output": ["IP"], "capture": []}))
    text = "a@b.io from 10.1.2.3"
    assert rails.check(text, "input") == "[EMAIL] from 10.1.2.3"
    assert rails.check(text, "output") == "a@b.io from [IP]"
    assert rails.redact(text, "capture") == text
    assert not rails.active("capture")
