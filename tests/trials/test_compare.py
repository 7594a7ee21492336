"""One pair's figures with the real sacrebleu chrF: identical, a paraphrase, an unrelated answer, refusals; the
agreement rule; normalisation; the cosine."""

from __future__ import annotations

import pytest

from appliance.trials.compare import Answer, agreement_of, compare, cosine, normalise, refusal
from tests.trials.conftest import ok

QUESTION_ANSWER = "The capital of France is Paris, on the river Seine."


def test_identical_answers_agree_fully() -> None:
    figures = compare(ok(QUESTION_ANSWER, 0.4, 12), ok(QUESTION_ANSWER, 0.9, 12))
    assert figures.exact and figures.chrf == 100.0 and figures.agreement == 1.0
    assert figures.length_delta_chars == 0 and figures.length_delta_tokens == 0
    assert figures.latency_delta_s == pytest.approx(0.5)
    assert figures.live_refusal is None and figures.candidate_refusal is None


def test_case_punctuation_and_white_space_do_not_count() -> None:
    figures = compare(ok(QUESTION_ANSWER), ok("the capital of france is  Paris on the river seine"))
    assert figures.exact and figures.agreement == 1.0
    assert normalise("  Héllo,\tWORLD!! ") == "héllo world"
    assert normalise("ﬁne — ok") == "fine ok"  # NFKC: the ligature is two letters; the dash is punctuation


def test_a_paraphrase_agrees_in_part_and_an_unrelated_answer_hardly() -> None:
    paraphrase = compare(ok(QUESTION_ANSWER), ok("Paris, on the Seine, is the capital of France."))
    unrelated = compare(ok(QUESTION_ANSWER), ok("Bananas are rich in potassium and grow in warm climates."))
    assert not paraphrase.exact and not unrelated.exact
    assert 0.5 < paraphrase.agreement < 0.95, paraphrase
    assert unrelated.agreement < 0.25, unrelated
    assert paraphrase.agreement == pytest.approx(paraphrase.chrf / 100)
    assert unrelated.length_delta_chars == len("Bananas are rich in potassium and grow in warm climates.") - len(
        QUESTION_ANSWER)


@pytest.mark.parametrize(("live", "candidate", "refusals", "agreement"), [
    # the candidate's guardrail refused (400) while live answered: they disagree
    (ok(QUESTION_ANSWER), Answer(400, "", 0.01), (None, "error"), 0.0),
    # the candidate's backend failed
    (ok(QUESTION_ANSWER), Answer(502, "", 0.01), (None, "error"), 0.0),
    # a deny rule ended the candidate's answer
    (ok(QUESTION_ANSWER), Answer(200, "The capital", 0.2, "content_filter"), (None, "filtered"), 0.0),
    # the candidate said nothing
    (ok(QUESTION_ANSWER), ok("  \n"), (None, "empty"), 0.0),
    # both refused: they behaved alike
    (Answer(200, "", 0.1, "content_filter"), Answer(200, "", 0.1, "content_filter"), ("filtered", "filtered"), 1.0),
    (Answer(200, "", 0.1, "content_filter"), ok("   "), ("filtered", "empty"), 1.0),
])
def test_refusals(live: Answer, candidate: Answer, refusals: tuple[str | None, str | None], agreement: float) -> None:
    figures = compare(live, candidate)
    assert (figures.live_refusal, figures.candidate_refusal) == refusals
    assert figures.agreement == agreement


def test_the_agreement_rule() -> None:
    assert agreement_of(True, 100.0, None, None) == 1.0
    assert agreement_of(False, 42.0, None, None) == 0.42
    assert agreement_of(True, 100.0, None, "empty") == 0.0  # a refusal outranks an exact match
    assert agreement_of(False, 0.0, "error", "error") == 1.0
    assert refusal(Answer(200, "fine", 0.1, "length")) is None


def test_tokens_delta_only_when_both_are_known() -> None:
    assert compare(ok("a b c", tokens=3), ok("a b", tokens=2)).length_delta_tokens == -1
    assert compare(ok("a b c", tokens=3), ok("a b")).length_delta_tokens is None


def test_cosine() -> None:
    assert cosine([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    assert cosine([1.0, 0.0], [1.0]) is None  # different lengths
    assert cosine([0.0, 0.0], [1.0, 0.0]) is None  # a zero vector
    assert cosine([], []) is None
    assert compare(ok("a"), ok("b"), ([1.0, 0.0], [0.6, 0.8])).cosine == pytest.approx(0.6)
