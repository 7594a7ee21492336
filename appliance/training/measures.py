"""The held-out figures a run reports before and after training, by method: the eval loss of an SFT run; the
mean log-prob margin of a preference run (chosen − rejected, summed over each answer's tokens); for KTO the mean
log-prob of the desirable answers minus that of the undesirable ones."""

from __future__ import annotations

from statistics import mean
from typing import Any

from appliance.training.encode import pad_id
from appliance.training.heldout import answer_logprobs, encoded, evaluate
from appliance.training.request import TrainMethod

Figures = dict[str, float | None]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pairs(model: Any, tokenizer: Any, records: list[dict[str, Any]], max_len: int) -> Figures:
    pad = pad_id(tokenizer)
    chosen = answer_logprobs(model, tokenizer, [(r["prompt"], r["chosen"]) for r in records], max_len, pad)
    rejected = answer_logprobs(model, tokenizer, [(r["prompt"], r["rejected"]) for r in records], max_len, pad)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {"margin": _round(mean(margins)), "chosen_logp": _round(mean(chosen)),
            "rejected_logp": _round(mean(rejected)), "accuracy": _round(mean(m > 0 for m in margins))}


def _labelled(model: Any, tokenizer: Any, records: list[dict[str, Any]], max_len: int) -> Figures:
    scores = answer_logprobs(model, tokenizer, [(r["prompt"], r["completion"]) for r in records], max_len,
                             pad_id(tokenizer))
    good = [s for s, r in zip(scores, records, strict=True) if r["label"]]
    bad = [s for s, r in zip(scores, records, strict=True) if not r["label"]]
    margin = mean(good) - mean(bad) if good and bad else None
    return {"margin": _round(margin), "desirable_logp": _round(mean(good)) if good else None,
            "undesirable_logp": _round(mean(bad)) if bad else None}


def measure(method: TrainMethod, model: Any, tokenizer: Any, records: list[dict[str, Any]], max_len: int,
            batch_size: int) -> Figures:
    """The method's held-out figures of `model` on the eval split's `records` (None where there are none)."""
    if method == "sft":
        examples = encoded(tokenizer, [r["messages"] for r in records], max_len)
        return {"eval_loss": evaluate(model, examples, batch_size, pad_id(tokenizer))}
    if not records:
        return {"margin": None}
    if method == "kto":
        return _labelled(model, tokenizer, records, max_len)
    return _pairs(model, tokenizer, records, max_len)
