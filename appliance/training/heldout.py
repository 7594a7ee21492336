"""Held-out measures the jobs report before and after training, computed the same way for every method and
by the standalone eval job: the token-weighted loss on the assistant tokens of conversations, and the summed
log-probability an answer gets after its prompt (a preference pair's margin: chosen − rejected)."""

from __future__ import annotations

import math
from typing import Any

from appliance.training.encode import IGNORE, Example, collate, encode, encode_answer

Messages = list[dict[str, str]]


def encoded(tokenizer: Any, conversations: list[Messages], max_len: int) -> list[Example]:
    """The conversations with assistant tokens within `max_len`, encoded (the others are left out)."""
    return [e for e in (encode(tokenizer, c, max_len) for c in conversations) if e is not None]


def evaluate(model: Any, examples: list[Example], batch_size: int, pad: int) -> float | None:
    """Mean loss per labelled token over `examples` (None when there are none)."""
    import torch

    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(model.device) for k, v in collate(examples[start:start + batch_size], pad).items()}
            out = model(**batch)
            tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(out.loss) * tokens
            count += tokens
    model.train(was_training)
    return total / max(count, 1)


def perplexity(loss: float | None) -> float | None:
    """exp(mean token loss), capped so a diverged run reports a huge number rather than overflowing."""
    return None if loss is None else round(math.exp(min(loss, 50.0)), 4)


def answer_logprobs(model: Any, tokenizer: Any, pairs: list[tuple[Messages, Messages]], max_len: int,
                    pad: int, batch_size: int = 4) -> list[float]:
    """Summed log-probability of each answer's tokens after its prompt (the answer's messages as the chat
    template renders them, its end-of-turn marker included); 0.0 for an answer cut off by `max_len`."""
    import torch

    examples = [encode_answer(tokenizer, prompt, answer, max_len) for prompt, answer in pairs]
    out: list[float] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            kept = [e for e in chunk if e is not None]
            sums = _summed_logprobs(model, kept, pad) if kept else []
            out.extend(sums.pop(0) if e is not None else 0.0 for e in chunk)
    model.train(was_training)
    return out


def _summed_logprobs(model: Any, examples: list[Example], pad: int) -> list[float]:
    import torch

    batch = {k: v.to(model.device) for k, v in collate(examples, pad).items()}
    labels = batch.pop("labels")
    logits = model(**batch).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return [float(v) for v in (picked * mask).sum(dim=-1)]
