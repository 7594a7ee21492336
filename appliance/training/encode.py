"""Conversations to token ids with the loss on assistant tokens only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    def __bool__(self) -> bool:
        return any(label != IGNORE for label in self.labels)


def _ids(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    ids = out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out
    return [int(i) for i in ids]


def encode(tokenizer: Any, conversation: list[dict[str, str]], max_len: int) -> Example | None:
    """Template the whole conversation; label only the tokens each assistant turn adds.

    Each assistant turn's span is found by templating the conversation up to it (with the generation prompt)
    and up to its end: the tokens between are the assistant's answer and its end-of-turn marker.
    """
    full = _ids(tokenizer, conversation, False)[:max_len]
    labels = [IGNORE] * len(full)
    for index, message in enumerate(conversation):
        if message["role"] != "assistant":
            continue
        start = len(_ids(tokenizer, conversation[:index], True))
        end = min(len(_ids(tokenizer, conversation[: index + 1], False)), len(full))
        for position in range(start, end):
            labels[position] = full[position]
    example = Example(full, labels)
    return example if example else None


def encode_answer(tokenizer: Any, prompt: list[dict[str, str]], answer: list[dict[str, str]],
                  max_len: int) -> Example | None:
    """Prompt and answer templated together, the labels on the answer's tokens only (everything after the
    prompt with its generation prompt): how a preference pair's answers are scored."""
    full = _ids(tokenizer, [*prompt, *answer], False)[:max_len]
    start = len(_ids(tokenizer, prompt, True))
    example = Example(full, [IGNORE] * min(start, len(full)) + full[start:])
    return example if example else None


def pad_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end-of-sequence token."""
    value = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(value)


def collate(examples: list[Example], pad: int) -> dict[str, torch.Tensor]:
    import torch  # here, not at module level: the daemon imports pad_id (via export preflight) without torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
