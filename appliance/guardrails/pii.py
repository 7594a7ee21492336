"""The built-in PII recognisers: a candidate pattern each (Presidio's patterns for e-mail, payment cards, IBANs and
IP addresses, with their validation) and a maintained library for the checks that need data: `phonenumbers`
(the library Presidio itself uses for phones) and `python-stdnum` (IBAN country formats with mod-97, Luhn).

Presidio itself is not imported: importing `presidio_analyzer` loads spaCy and, where transformers is installed
(the appliance's venv has it for training), torch and transformers too: about 7 s of CPU and 400 MB of memory
in the daemon, which never loads torch. Its pattern recognisers are also 10 to 20 times slower per KiB than
these (bench/guardrails.py), and they cannot say whether the end of a text could still become a value."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import phonenumbers
from stdnum import iban, luhn

from appliance.guardrails.scan import Matcher, compile_matcher

EMAIL, PHONE, IBAN, CREDIT_CARD, IP = "EMAIL", "PHONE", "IBAN", "CREDIT_CARD", "IP"
BUILTIN_ENTITIES = (EMAIL, PHONE, IBAN, CREDIT_CARD, IP)
# Regions a number written without a country code is tried in (one of them must find it valid).
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "NL", "CH", "AT", "BE", "IE", "IL", "IN", "CA", "BR", "AU")

_LOCAL = r"[!#$%&'*+\-/=?^_`{|}~\w]"
# Presidio's EmailRecognizer pattern.
EMAIL_PATTERN = (rf"\b(({_LOCAL})|({_LOCAL}[!#$%&'*+\-/=?^_`{{|}}~\.\w]{{0,}}{_LOCAL}))[@]\w+(?:-+\w+)*"
                 r"(?:\.\w+(?:-+\w+)*)+\b")
# Presidio's CreditCardRecognizer pattern.
CARD_PATTERN = (r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))[- ]?(\d{3,4})[- ]?"
                r"(\d{3,4})[- ]?(\d{3,5})\b")
# Presidio's IbanRecognizer pattern: groups 2 and 3 may be words after the IBAN, so shorter forms are tried too.
IBAN_PATTERN = (r"(?<![A-Z0-9])([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})((?:[ -]?[A-Z0-9]{4})?)"
                r"((?:[ -]?[A-Z0-9]{1,3})?)(?![A-Z0-9])")
_V4 = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_V4ADDR = rf"{_V4}\.{_V4}\.{_V4}\.{_V4}"
_H = r"[0-9A-Fa-f]{1,4}"
_V6_PREFIX = r"(?:/(?:12[0-8]|1[01]\d|[1-9]?\d))?"
# Presidio's IpRecognizer patterns as one alternation (IPv6 forms first: a mapped IPv4 must win as a whole).
IP_PATTERN = "|".join((
    rf"(?<![\w:])::(?:ffff(?::0{{1,4}})?:)?{_V4ADDR}{_V6_PREFIX}\b",
    rf"(?<![\w:])(?:(?:{_H}:){{1,5}}:(?:{_H}:){{0,4}}|(?:{_H}:){{6}}){_V4ADDR}{_V6_PREFIX}\b",
    rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|:(?::{_H}){{1,7}}|(?:{_H}:){{1,6}}:{_H}|"
    rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|"
    rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}|{_H}:(?::{_H}){{1,6}}|:(?::{_H}){{1,6}})(?:%[0-9a-zA-Z]+)?{_V6_PREFIX}"
    r"(?![\w:]|\.\d)",
    rf"\b{_V4ADDR}(?:/(?:[0-2]?\d|3[0-2]))?\b",
))
# A run of 7 to 17 digits with at most two separators between digits; `phonenumbers` finds the numbers in it.
PHONE_PATTERN = r"(?<![\w+])(?:\+|\()?\d(?:[ \-.()/]{0,2}\d){6,16}(?!\w)"


def _email(value: str) -> Sequence[tuple[int, int]]:
    """Presidio asks tldextract for a public suffix (it may fetch the list from the network); this asks for what
    every such domain has: a last label of letters (or an IDNA `xn--` label), and RFC 5321's length limits."""
    local, _, domain = value.rpartition("@")
    last = domain.rsplit(".", 1)[-1]
    ok = len(value) <= 254 and len(local) <= 64 and (last.isalpha() or last.lower().startswith("xn--"))
    return [(0, len(value))] if ok and len(last) >= 2 else []


def _card(value: str) -> Sequence[tuple[int, int]]:
    digits = value.replace("-", "").replace(" ", "")
    return [(0, len(value))] if luhn.is_valid(digits) else []


def _iban(value: str) -> Sequence[tuple[int, int]]:
    """The longest of the candidate's prefixes that ends on a group and is a valid IBAN (country format and
    mod-97)."""
    found = compiled_iban.fullmatch(value)
    if found is None:
        return []
    for end in (found.end(3), found.end(2), found.end(1)):
        if iban.is_valid(value[:end]):
            return [(0, end)]
    return []


def _ip(value: str) -> Sequence[tuple[int, int]]:
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return []
    return [(0, len(value))]


def _phone(value: str) -> Sequence[tuple[int, int]]:
    """The valid numbers inside a candidate run, found as Presidio finds them (`PhoneNumberMatcher`, VALID
    leniency), trying each region for numbers without a country code."""
    spans: set[tuple[int, int]] = set()
    regions = (None,) if value.startswith("+") else PHONE_REGIONS
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(value, region, leniency=phonenumbers.Leniency.VALID):
            spans.add((match.start, match.end))
    return sorted(spans)


compiled_iban = compile_matcher(IBAN, IBAN_PATTERN).find


def builtin_matchers() -> dict[str, Matcher]:
    """One matcher per built-in entity; the priority decides between overlapping values of the same extent (an
    IPv4 address that is also a valid phone number is an IP)."""
    return {
        CREDIT_CARD: compile_matcher(CREDIT_CARD, CARD_PATTERN, validate=_card, priority=0),
        IBAN: compile_matcher(IBAN, IBAN_PATTERN, validate=_iban, priority=1),
        EMAIL: compile_matcher(EMAIL, EMAIL_PATTERN, validate=_email, priority=2),
        IP: compile_matcher(IP, IP_PATTERN, validate=_ip, priority=3),
        PHONE: compile_matcher(PHONE, PHONE_PATTERN, validate=_phone, priority=4),
    }
