"""Greedy answers from a transformers model (base or PEFT-wrapped) for golden prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appliance.evaluation.golden import GoldenItem
from appliance.training.encode import pad_id

BATCH = 8


def greedy_answers(model: Any, tokenizer: Any, items: list[GoldenItem], max_new_tokens: int = 48,
                   on_batch: Callable[[int, int], None] | None = None) -> list[str]:
    """One greedy answer per item, batched with left padding (decoder-only models continue from the right)."""
    import torch

    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    pad = pad_id(tokenizer)
    answers: list[str] = []
    try:
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            texts = [tokenizer.apply_chat_template(i.messages(), tokenize=False, add_generation_prompt=True)
                     for i in chunk]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
            width = batch["input_ids"].shape[1]
            answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
            if on_batch:
                on_batch(len(answers), len(items))
    finally:
        if was_training:
            model.train()
    return answers
