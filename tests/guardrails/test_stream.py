"""Streaming: for every way to cut an answer into two or three chunks, no PII value is ever released raw, the
released text is the whole text's masking, and nothing from a deny match on is released."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.guardrails.engine import Guardrails
from appliance.guardrails.stream import StreamFilter
from tests.guardrails.test_pii import MASKED


def _run(rails: Guardrails, chunks: list[str]) -> tuple[list[str], StreamFilter]:
    filt = rails.stream()
    out = [filt.feed(chunk) for chunk in chunks]
    out.append(filt.finish())
    return out, filt


def _cuts(text: str, pieces: int) -> list[list[str]]:
    """Every chunking of `text` into `pieces` non-empty chunks."""
    return [[text[a:b] for a, b in itertools.pairwise((0, *points, len(text)))]
            for points in itertools.combinations(range(1, len(text)), pieces - 1)]


@pytest.mark.parametrize(("entity", "value"), MASKED, ids=[f"{e}:{v}" for e, v in MASKED])
def test_a_value_split_anywhere_is_never_released_raw(guarded: Guardrails, entity: str, value: str) -> None:
    text = f"Hi {value}."
    whole = guarded.check(text, "output")
    assert whole == f"Hi [{entity}]."
    for chunks in _cuts(text, 2) + _cuts(text, 3):
        out, filt = _run(guarded, chunks)
        released = "".join(out)
        assert released == whole, chunks
        assert filt.denied is None
        # No prefix of the stream (what a client has seen at any moment) holds the value or a piece of it longer
        # than what ordinary text around it would explain.
        seen = ""
        for part in out:
            seen += part
            assert value not in seen
            assert value[: len(value) // 2 + 1] not in seen, (chunks, seen)


@pytest.mark.parametrize(("rule", "text", "word"), [
    ("violence", "ok, I will kill you now.", "kill"),
    ("violence", "a BOMB!", "BOMB"),
    ("violence", "I will kill\n  you", "kill"),
    ("secrets", "the password: hunter2 ok", "password"),
])
def test_nothing_from_a_deny_match_on_is_released(guarded: Guardrails, rule: str, text: str, word: str) -> None:
    assert guarded.examine(text, "output").denied == rule
    before = text[:text.index(word)]
    for chunks in _cuts(text, 2) + _cuts(text, 3):
        out, filt = _run(guarded, chunks)
        assert filt.denied == rule and filt.reason == "match", chunks
        assert before.startswith("".join(out)), chunks  # only text before the match, none of it
        assert filt.feed("more text") == "" and filt.finish() == ""


def test_ordinary_text_is_released_at_once_but_for_its_last_word(guarded: Guardrails) -> None:
    filt = guarded.stream()
    assert filt.feed("Hello there, how are") == "Hello there, how "
    assert filt.held == "are"  # it could still become an e-mail address ("are@…")
    assert filt.feed(" you?") == "are "
    assert filt.held == "you?"  # "?" may begin or be part of an address's local part (RFC 5322 allows it)
    assert filt.feed(" Fine. ") == "you? Fine. "
    assert filt.finish() == ""


def test_a_keyword_inside_a_longer_word_is_no_match(guarded: Guardrails) -> None:
    out, filt = _run(guarded, ["the bombastic ", "style"])
    assert "".join(out) == "the bombastic style" and filt.denied is None


def test_a_long_run_without_a_value_is_not_held_forever(guarded: Guardrails) -> None:
    filt = guarded.stream()
    released = "".join(filt.feed("ab" * 50) for _ in range(60))
    assert len(filt.held) <= 1100 and len(released) + len(filt.held) == 6000


def test_no_policy_no_work() -> None:
    from tests.guardrails.conftest import policy

    filt = Guardrails(policy()).stream()
    assert filt.feed("a@b.io") == "a@b.io" and filt.finish() == ""


MIXED = ("Write to jane.doe@example.org or call +44 20 7946 0958; pay GB82 WEST 1234 5698 7654 32 with "
         "5555 5555 5555 4444, server 2001:db8::1 and 10.0.0.1, badge EMP-654321. Done.")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(MIXED) - 1), max_size=40, unique=True))
def test_random_chunkings_of_a_mixed_answer(guarded: Guardrails, points: list[int]) -> None:
    points = sorted(points)
    chunks = [MIXED[a:b] for a, b in itertools.pairwise((0, *points, len(MIXED)))]
    out, _ = _run(guarded, chunks)
    assert "".join(out) == guarded.check(MIXED, "output")
