"""Guardrails cost, printed (not a timed test): whole texts per KiB (this engine and Presidio's AnalyzerEngine
with the same entities, for comparison) and the streaming filter per chunk (one token a chunk, as llama-server
streams), with redaction of every built-in entity and two deny rules, on plain prose and on PII-dense text.
Usage: python bench/guardrails.py [--kib 16] [--no-presidio]"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from typing import Any

from appliance.guardrails.engine import Guardrails
from appliance.guardrails.pii import BUILTIN_ENTITIES
from appliance.guardrails.policy import GuardrailPolicy
from appliance.guardrails.sse import SseGuard

PROSE = ("The quarterly report shows steady growth in the northern region, where the new distribution centre "
         "cut delivery times by a third. Customer satisfaction rose, and the team expects the trend to hold. ")
DENSE = ("Contact jane.doe@example.org or +44 20 7946 0958, pay to GB82 WEST 1234 5698 7654 32 with card "
         "5555 5555 5555 4444; the server is 10.20.30.40 (2001:db8::1). ")


def policy() -> Guardrails:
    everything = list(BUILTIN_ENTITIES)
    return Guardrails(GuardrailPolicy.model_validate({
        "deny": [{"name": "violence", "keywords": ["kill you", "bomb", "shoot"]},
                 {"name": "secrets", "regex": r"\bpassword\s*[:=]\s*\S+"}],
        "redact": {"input": everything, "output": everything, "capture": everything}}))


def presidio() -> Any:
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
    return AnalyzerEngine(registry=registry, nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en",
                                                                                "model_name": "none"}]))


def per_kib(run: Callable[[str], object], text: str, rounds: int = 3) -> float:
    """Best of `rounds`, in ms per KiB of UTF-8."""
    best = min(_timed(run, text) for _ in range(rounds))
    return best * 1e3 / (len(text.encode()) / 1024)


def _timed(run: Callable[[str], object], text: str) -> float:
    began = time.perf_counter()
    run(text)
    return time.perf_counter() - began


def tokens(text: str) -> list[str]:
    """Token-sized chunks: a word with its leading space, punctuation apart (about what a BPE tokenizer emits)."""
    return re.findall(r" ?\w+|[^\w ]| ", text)


def chunk(token: str) -> bytes:
    body = {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": token}}], "created": 1,
            "id": "chatcmpl-1", "model": "m", "object": "chat.completion.chunk"}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def per_chunk(rails: Guardrails, text: str, sse: bool) -> float:
    """µs per one-token chunk through a StreamFilter (or the whole SSE rewriter), best of 3."""
    parts = tokens(text)
    events = [chunk(t) for t in parts]
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        if sse:
            guard = SseGuard(rails.stream)
            for event in events:
                guard.feed(event)
        else:
            filt = rails.stream()
            for part in parts:
                filt.feed(part)
            filt.finish()
        best = min(best, time.perf_counter() - began)
    return best * 1e6 / len(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=16, help="size of the whole texts")
    parser.add_argument("--no-presidio", action="store_true", help="skip the Presidio comparison")
    args = parser.parse_args()
    rails = policy()
    texts = {"prose": (PROSE * (args.kib * 1024 // len(PROSE) + 1))[: args.kib * 1024],
             "pii-dense": (DENSE * (args.kib * 1024 // len(DENSE) + 1))[: args.kib * 1024]}
    print(f"whole texts ({args.kib} KiB), ms per KiB:")
    for name, text in texts.items():
        print(f"  {name:10} this engine (deny + 5 entities): {per_kib(lambda t: rails.examine(t, 'input'), text):7.2f}")
    if not args.no_presidio:
        began = time.perf_counter()
        analyzer = presidio()
        analyzer.analyze("warm up a@b.io", language="en")
        print(f"  (Presidio import + engine: {time.perf_counter() - began:.1f} s)")
        for name, text in texts.items():
            ms = per_kib(lambda t: analyzer.analyze(t, language="en"), text, rounds=1)
            print(f"  {name:10} Presidio AnalyzerEngine (5 entities):  {ms:7.2f}")
    print("streaming, µs per one-token chunk (StreamFilter / whole SSE rewrite incl. JSON):")
    for name, text in texts.items():
        sample = text[:4096]
        print(f"  {name:10} {per_chunk(rails, sample, False):7.1f} / {per_chunk(rails, sample, True):7.1f}")


if __name__ == "__main__":
    main()
