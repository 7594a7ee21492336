"""F16 GGUF → a quantized variant with llama.cpp's `llama-quantize` (a child process: its per-tensor log stays
out of the job's progress stream, and a crash in it cannot take the job down)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from appliance.backends.base import BackendUnavailable
from appliance.backends.llamacpp import find_llama_tool
from appliance.export.layout import ExportError

# The variants the appliance exports: the profile's GGUF variants that llama-quantize writes directly.
VARIANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q4_1")


def quantize(src: Path, dst: Path, variant: str, threads: int | None = None, timeout_s: float = 3600) -> Path:
    """Write `dst` as `variant` from the F16/F32 file `src` (atomic: temp name, then rename).

    Raises:
        ExportError: unknown variant, no llama-quantize, or it failed (with the end of its log).
    """
    if variant not in VARIANTS:
        raise ExportError(f"unknown quantization {variant!r}; expected one of {', '.join(VARIANTS)}")
    try:
        tool = find_llama_tool("llama-quantize")
    except BackendUnavailable as exc:
        raise ExportError(str(exc)) from exc
    staging = dst.with_name(dst.name + ".tmp")
    argv = [str(tool), str(src), str(staging), variant, str(threads or os.cpu_count() or 1)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0 or not staging.is_file():
        staging.unlink(missing_ok=True)
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ExportError(f"llama-quantize {variant} failed (exit {done.returncode}): {tail}")
    staging.rename(dst)
    return dst
