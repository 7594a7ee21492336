"""Train/eval split and the canonical bytes that name a dataset version.

The split ranks examples by sha256(seed, canonical example without its metadata), so membership depends only on
the examples and the seed, not on their order in the file nor on their lineage; each split keeps the file's
order. An example is a conversation (an SFT record, stored as `{"messages": [...]}`) or a whole record (every
kind, `kinds.parse`), stored as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar

from appliance.datasets.shapes import Message

Conversation = list[Message]
Example = TypeVar("Example", Conversation, dict[str, Any])


def canonical_line(example: Conversation | dict[str, Any]) -> bytes:
    record = {"messages": example} if isinstance(example, list) else example
    return (json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode()


def canonical_jsonl(examples: Sequence[Conversation | dict[str, Any]]) -> bytes:
    return b"".join(canonical_line(m) for m in examples)


def _rank_line(example: Conversation | dict[str, Any]) -> bytes:
    if isinstance(example, dict) and "metadata" in example:
        example = {k: v for k, v in example.items() if k != "metadata"}
    return canonical_line(example)


def content_id(train: bytes, eval_: bytes) -> str:
    """The version id: sha256 over both files with their names, NUL-separated (JSON text never holds a raw
    NUL), so moving an example from one split to the other changes the id."""
    digest = hashlib.sha256()
    for name, data in (("train.jsonl", train), ("eval.jsonl", eval_)):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def eval_size(count: int, eval_fraction: float) -> int:
    if count < 2 or eval_fraction <= 0.0:
        return 0
    return min(count - 1, max(1, math.floor(count * eval_fraction + 0.5)))


def split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError("eval fraction must be in [0, 1)")
    salt = f"split:{seed}\0".encode()
    ranks = sorted(range(len(examples)), key=lambda i: hashlib.sha256(salt + _rank_line(examples[i])).digest())
    chosen = set(ranks[:eval_size(len(examples), eval_fraction)])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    evaluation = [e for i, e in enumerate(examples) if i in chosen]
    return train, evaluation
