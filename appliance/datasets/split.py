"""Train/eval split and the canonical bytes that name a dataset version.

The split ranks examples by sha256(seed, canonical example), so membership depends only on the examples and
the seed, not on their order in the file; each split keeps the file's order.
"""

from __future__ import annotations

import hashlib
import json
import math

from appliance.datasets.shapes import Message

Conversation = list[Message]


def canonical_line(messages: Conversation) -> bytes:
    return (json.dumps({"messages": messages}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            + "\n").encode()


def canonical_jsonl(examples: list[Conversation]) -> bytes:
    return b"".join(canonical_line(m) for m in examples)


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


def split(examples: list[Conversation], eval_fraction: float, seed: int) -> tuple[list[Conversation],
                                                                                  list[Conversation]]:
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError("eval fraction must be in [0, 1)")
    salt = f"split:{seed}\0".encode()
    ranks = sorted(range(len(examples)), key=lambda i: hashlib.sha256(salt + canonical_line(examples[i])).digest())
    chosen = set(ranks[:eval_size(len(examples), eval_fraction)])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    evaluation = [e for i, e in enumerate(examples) if i in chosen]
    return train, evaluation
