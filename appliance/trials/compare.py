"""One shadow pair's figures: the live answer (the one the app received) against the candidate's answer to the
same request.

- **exact**: the two answers equal after normalisation (case folded, punctuation removed, white space collapsed).
- **chrf**: chrF (sacrebleu's `CHRF()`: character 6-grams, beta 2) of the candidate's answer against the live
  one as the reference, 0 to 100. Character n-grams credit a paraphrase that reuses the words, and chrF is
  defined on one short sentence (sentence BLEU is not without smoothing); it is asymmetric (recall weighs twice).
- **cosine**: the cosine of the two answers' embeddings (the embeddings deployment), or None when none is
  configured or the call failed (counted by the runner).
- **length** and **latency** deltas: candidate minus live (characters; completion tokens when both are known;
  seconds).
- **refusals**: a side refused when it answered with an error status (a guardrail refusal is a 400, a backend
  failure 5xx), ended with `finish_reason: "content_filter"`, or said nothing (an empty answer).

**agreement**, the one figure the shadow gate judges, in [0, 1]: 1 when both sides refused (they behaved
alike), 0 when exactly one did, 1 on an exact match, otherwise chrF / 100. It is deliberately chrF alone, not a
mean with the cosine: a figure the gate compares with a threshold must not change meaning with whether the
embeddings deployment happened to answer, and sentence-embedding cosines of unrelated texts sit far above 0,
which would lift the mean. The cosine is reported beside it.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

Refusal = Literal["error", "filtered", "empty"]


class Answer(NamedTuple):
    """One side's answer: the HTTP status, the first choice's text, the seconds it took, and when known the
    finish reason and the completion tokens (the gateway reads them from the answer; `send` may leave them)."""

    status: int
    text: str
    latency_s: float
    finish_reason: str = ""
    completion_tokens: int | None = None


class PairFigures(BaseModel):
    """What the comparison of one pair found; see the module's docstring for each figure."""

    agreement: float = Field(..., ge=0.0, le=1.0, description="The gate's figure: exact 1, else chrF/100")
    exact: bool = Field(..., description="Equal after normalising case, punctuation and white space")
    chrf: float = Field(..., ge=0.0, le=100.0, description="chrF of the candidate against the live answer")
    cosine: float | None = Field(None, ge=-1.0, le=1.0, description="Cosine of the two answers' embeddings")
    length_delta_chars: int = Field(..., description="Candidate minus live, in characters")
    length_delta_tokens: int | None = Field(None, description="Candidate minus live, in completion tokens")
    latency_delta_s: float = Field(..., description="Candidate minus live, in seconds")
    live_refusal: Refusal | None = None
    candidate_refusal: Refusal | None = None


def normalise(text: str) -> str:
    """Case folded, Unicode-normalised (NFKC), punctuation and symbols removed, white space collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in folded)
    return " ".join(kept.split())


def refusal(answer: Answer) -> Refusal | None:
    """Why a side counts as refused, None when it answered."""
    if answer.status != 200:
        return "error"
    if answer.finish_reason == "content_filter":
        return "filtered"
    if not answer.text.strip():
        return "empty"
    return None


@functools.cache
def _chrf() -> Any:
    # Imported on first use: sacrebleu loads numpy (~0.15 s), which nothing else on the daemon's path needs.
    from sacrebleu.metrics.chrf import CHRF

    return CHRF()


def chrf(candidate: str, reference: str) -> float:
    """chrF of `candidate` against `reference`, 0 to 100 (100 when both are empty: nothing differs)."""
    if not candidate.strip() and not reference.strip():
        return 100.0
    score = float(_chrf().sentence_score(candidate, [reference]).score)
    return min(100.0, max(0.0, score))


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The cosine of two vectors, None when it is undefined (different lengths, a zero vector, not finite)."""
    if len(a) != len(b) or not a:
        return None
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if norm == 0.0 or not math.isfinite(norm) or not math.isfinite(dot):
        return None
    return max(-1.0, min(1.0, dot / norm))


def agreement_of(exact: bool, chrf_score: float, live: Refusal | None, candidate: Refusal | None) -> float:
    """The agreement rule (module docstring): refusals first, then exact match, then chrF / 100."""
    if live is not None or candidate is not None:
        return 1.0 if live is not None and candidate is not None else 0.0
    return 1.0 if exact else round(chrf_score / 100.0, 6)


def compare(live: Answer, candidate: Answer, vectors: tuple[Sequence[float], Sequence[float]] | None = None
            ) -> PairFigures:
    """The figures of one pair. `vectors`: the two answers' embeddings (live, candidate) when they were fetched.
    Pure CPU (chrF of two answers: about 1 ms each 400 characters); the runner calls it off the event loop."""
    live_refusal, candidate_refusal = refusal(live), refusal(candidate)
    exact = normalise(live.text) == normalise(candidate.text)
    score = 100.0 if exact else chrf(candidate.text, live.text)
    tokens = None
    if live.completion_tokens is not None and candidate.completion_tokens is not None:
        tokens = candidate.completion_tokens - live.completion_tokens
    return PairFigures(
        agreement=agreement_of(exact, score, live_refusal, candidate_refusal), exact=exact, chrf=round(score, 4),
        cosine=None if vectors is None else cosine(*vectors), length_delta_chars=len(candidate.text) - len(live.text),
        length_delta_tokens=tokens, latency_delta_s=round(candidate.latency_s - live.latency_s, 6),
        live_refusal=live_refusal, candidate_refusal=candidate_refusal)
