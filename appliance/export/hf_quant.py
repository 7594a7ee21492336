"""Lossy HF-folder exports for vLLM, and their parity check.

- AWQ (`a10g`, `datacenter-gpu`): AutoAWQ, 4-bit weights in groups of 128 (`w4g128`), GEMM kernels, calibrated
  on the golden prompts and the adapter's training texts; served with `--quantization awq`. Needs a CUDA GPU and
  the `gpu` extra (autoawq).
- FP8 (`h100`): no artifact. vLLM's dynamic FP8 (`--quantization fp8` on the merged bf16 folder) casts weights
  per tensor when it loads them: no calibration set, no extra package, nothing more to store or sign. Its
  quality is judged where it runs, by the deploy eval gate on the FP8-serving candidate.

The check of a lossy folder is the one quantized GGUF files get: fed the merged model's greedy continuation
(teacher forcing), how often its top-1 token agrees and the mean gap of log-probabilities, against the
thresholds in `parity.THRESHOLDS` ("awq", and "bf16" for a plain bf16 cast, which also runs on a CPU).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

from appliance.export.layout import ExportError
from appliance.export.parity import Forced

AWQ_SCHEME = re.compile(r"^w(\d+)g(\d+)$")


class TransformersForced:
    """An HF folder in transformers (any dtype or quantization it loads), with the interface the agreement
    check drives: at each position of the reference, its top-1 token and log-probabilities."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def forced(self, prompt_ids: list[int], tokens: list[int]) -> Forced:
        import torch

        ids = torch.tensor([prompt_ids + tokens[:-1]], device=self.model.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1:].float()
        rows = torch.log_softmax(logits, dim=-1)
        best = rows.argmax(dim=-1)
        return Forced(top1=[int(t) for t in best], top1_logprobs=[float(rows[i, t]) for i, t in enumerate(best)],
                      logprobs=[float(rows[i, t]) for i, t in enumerate(tokens)])


def load_forced(folder: Path, dtype: str = "auto") -> TransformersForced:
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = {"auto": "auto", "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    device_map = "auto" if torch.cuda.is_available() else None
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype, device_map=device_map)
    model.train(False)
    return TransformersForced(model)


def quantize_awq(merged: Path, out: Path, calibration: list[str], scheme: str = "w4g128") -> Path:
    """An AWQ folder of `merged` (config carries its quantization_config, so vLLM needs only the flag).

    Raises:
        ExportError: no CUDA GPU, autoawq missing, or an unknown scheme.
    """
    match = AWQ_SCHEME.match(scheme)
    if match is None:
        raise ExportError(f"unknown AWQ scheme {scheme!r}; expected w<bits>g<group>, e.g. w4g128")
    if importlib.util.find_spec("awq") is None:
        raise ExportError("AWQ export needs autoawq: install the 'gpu' extra on a box with a CUDA GPU")
    import torch

    if not torch.cuda.is_available():
        raise ExportError("AWQ export needs a CUDA GPU (AutoAWQ calibrates on the GPU); torch sees none")
    from awq import AutoAWQForCausalLM
    from transformers import AutoTokenizer

    bits, group = int(match.group(1)), int(match.group(2))
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    model = AutoAWQForCausalLM.from_pretrained(str(merged), safetensors=True)
    model.quantize(tokenizer, calib_data=calibration,
                   quant_config={"zero_point": True, "q_group_size": group, "w_bit": bits, "version": "GEMM"})
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_quantized(str(staging))
    tokenizer.save_pretrained(str(staging))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out
