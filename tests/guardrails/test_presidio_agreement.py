"""The built-in recognisers agree with Presidio's (the maintained reference, run offline here with its pattern
recognisers and no NLP model) on every example value and look-alike: same values, same extents."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.guardrails.engine import Guardrails
from appliance.guardrails.scan import scan
from tests.guardrails.test_pii import KEPT, MASKED

NAMES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN", "CREDIT_CARD": "CREDIT_CARD",
         "IP_ADDRESS": "IP"}


def presidio_analyzer() -> Any:
    """Presidio's AnalyzerEngine with the pattern recognisers of the built-in entities and no spaCy model; its
    e-mail check asks tldextract for the bundled public suffix snapshot, never the network."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
    )

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmail(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    registry = RecognizerRegistry(recognizers=[OfflineEmail(), PhoneRecognizer(), IbanRecognizer(),
                                               CreditCardRecognizer(), IpRecognizer()])
    engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


@pytest.fixture(scope="module")
def analyzer() -> Any:
    return presidio_analyzer()


def _presidio(analyzer: Any, text: str) -> set[tuple[str, int, int]]:
    found = {(NAMES[r.entity_type], r.start, r.end) for r in analyzer.analyze(text, language="en")}
    # Presidio also tags an IPv4 address as a phone number (score 0.4): an IP wins, as it does here.
    ips = [(s, e) for kind, s, e in found if kind == "IP"]
    return {f for f in found if not (f[0] == "PHONE" and any(s < f[2] and f[1] < e for s, e in ips))}


def _ours(rails: Guardrails, text: str) -> set[tuple[str, int, int]]:
    return {(s.label, s.start, s.end) for s in scan(text, 0, rails.matchers("capture"), final=True).spans}


@pytest.mark.parametrize("value", [v for e, v in MASKED if e != "EMPLOYEE_ID"] + KEPT)
def test_same_values_as_presidio(analyzer: Any, guarded: Guardrails, value: str) -> None:
    text = f"Details: {value}. Thanks"
    ours = {f for f in _ours(guarded, text) if f[0] != "EMPLOYEE_ID"}
    assert ours == _presidio(analyzer, text)
