"""The GGUF writer for plain Hugging Face folders (no base GGUF to copy metadata from): tiny randomly initialised
llama, mistral and qwen2 models with the starter's tokenizer, written as F16 GGUF and run by llama.cpp, must
answer the golden prompts greedily exactly like transformers; plus the pieces the gate relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from appliance.evaluation.golden import builtin_general
from appliance.export import parity
from appliance.export.layout import ExportError, interleave_rotary
from appliance.export.parity_report import ParityReport
from appliance.export.vocab import _pre_name
from appliance.export.writer import write_from_hf
from appliance.registry.starter import find_starter_gguf


def test_rotary_rows_interleave_per_head() -> None:
    rows = np.arange(8)[:, None]  # 2 heads of 4 rows: halves [0 1 | 2 3], [4 5 | 6 7]
    assert interleave_rotary(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    with pytest.raises(ExportError, match="rotary pairs"):
        interleave_rotary(np.zeros((6, 2)), 2)


@pytest.mark.parametrize(("pre", "name"), [
    # plain byte-level BPE (what transformers writes for a GGUF-converted gpt2 tokenizer)
    ({"type": "ByteLevel", "use_regex": True}, "gpt-2"),
    # SmolLM's own tokenizer.json: digits one by one, then byte level
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                            {"type": "ByteLevel", "use_regex": True}]}, "smollm"),
    # Llama 3 splits digits in runs of up to three
    ({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": r"(?i:'s)|\p{N}{1,3}| ?x"}},
                                            {"type": "ByteLevel", "use_regex": False}]}, "llama-bpe"),
    # Qwen2 splits every digit inside its regex
    ({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": r"(?i:'s)|\p{N}| ?x"}},
                                            {"type": "ByteLevel", "use_regex": False}]}, "qwen2"),
])
def test_pre_tokenizer_names(pre: dict[str, Any], name: str) -> None:
    assert _pre_name(pre) == name


def test_unknown_pre_tokenizer_is_refused() -> None:
    with pytest.raises(ExportError, match="pre-tokenizer"):
        _pre_name({"type": "Whitespace"})


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter's tokenizer as an HF tokenizer folder (read from the GGUF: no model conversion needed)."""
    from transformers import AutoTokenizer

    starter = find_starter_gguf()
    assert starter is not None, "the starter model package is not installed"
    out = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(str(starter.parent), gguf_file=starter.name).save_pretrained(out)
    return out


def _tiny(model_type: str, tokenizer_dir: Path, out: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, MistralConfig, Qwen2Config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
              "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
              # Wide weights give peaked logits: F16 rounding cannot flip a near-tie argmax by chance.
              "initializer_range": 0.2}
    configs = {"llama": LlamaConfig(**common, tie_word_embeddings=False),
               "mistral": MistralConfig(**common, sliding_window=None),
               "qwen2": Qwen2Config(**common, tie_word_embeddings=True)}
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(configs[model_type], dtype=torch.float32)  # type: ignore[no-untyped-call]
    if model_type == "qwen2":  # qwen2 has q/k/v biases; make them matter
        for name, weight in model.named_parameters():
            if name.endswith(".bias"):
                torch.nn.init.normal_(weight, std=0.2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model.eval(), tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen2"])
def test_hf_folder_export_runs_in_llama_cpp_like_transformers(model_type: str, tokenizer_dir: Path,
                                                              tmp_path: Path) -> None:
    model, tokenizer = _tiny(model_type, tokenizer_dir, tmp_path / model_type)
    out = write_from_hf(tmp_path / model_type, tmp_path / f"{model_type}.gguf", f"tiny-{model_type}")
    reader = gguf.GGUFReader(out)
    arch = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}[model_type]
    assert reader.get_field("general.architecture").contents() == arch  # type: ignore[union-attr]
    assert reader.get_field("tokenizer.ggml.pre").contents() == "gpt-2"  # type: ignore[union-attr]
    assert reader.get_field("tokenizer.chat_template") is not None
    names = {t.name for t in reader.tensors}
    assert ("output.weight" in names) == (model_type != "qwen2")  # tied embeddings are not written twice
    assert ("blk.0.attn_q.bias" in names) == (model_type == "qwen2")

    runs = parity.transformers_runs(model, tokenizer, builtin_general()[:3], 12)
    assert all(run.tokens for run in runs)
    with parity.llama_cpp_model(out, runs) as llm:
        check = parity.greedy_check("tiny", tokenizer, runs, llm)
        agreement = parity.agreement_check("F16", tokenizer, runs, llm)
    assert check.passed, check
    assert agreement.top1_agreement == 1.0 and agreement.mean_logprob_gap < 0.02, agreement
    # llama.cpp's own tokenizer, from the metadata we wrote, splits the chat prompt like transformers.
    text = tokenizer.apply_chat_template([{"role": "user", "content": runs[0].prompt}], tokenize=False,
                                         add_generation_prompt=True)
    from llama_cpp import Llama

    vocab_only = Llama(model_path=str(out), vocab_only=True, verbose=False)
    try:
        assert vocab_only.tokenize(text.encode(), add_bos=False, special=True) == runs[0].prompt_ids
    finally:
        vocab_only.close()


class _Replay:
    """Stands in for LlamaCpp with prescribed per-position figures: the near-tie rule is our own arithmetic on
    them (the real llama.cpp path is covered above and by the export tests)."""

    def __init__(self, forced: parity.Forced) -> None:
        self.forced_result = forced

    def forced(self, prompt_ids: list[int], tokens: list[int]) -> parity.Forced:
        return self.forced_result

    def greedy(self, prompt_ids: list[int], steps: int) -> list[int]:
        return [self.forced_result.top1[len(prompt_ids) - 3]] * steps


@pytest.mark.parametrize(("reference_margin", "export_margin", "passes"), [
    (0.004, 0.003, True),  # both models see a tie: fp16 rounding may break it either way
    (0.5, 0.003, False),  # the reference is sure: the export is wrong
    (0.004, 0.3, False),  # the export is sure of another token than a tied reference: still wrong
])
def test_near_tie_flip_is_reported_not_failed_only_when_both_models_see_the_tie(
        tokenizer_dir: Path, reference_margin: float, export_margin: float, passes: bool) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokens = tokenizer("The Pacific Ocean.", add_special_tokens=False)["input_ids"]
    other = tokenizer(" and", add_special_tokens=False)["input_ids"][0]
    run = parity.Run("largest ocean?", [1, 2, 3], tokens, [-0.1] * len(tokens), [1.0] * len(tokens))
    run.margins[2] = reference_margin
    top1 = list(tokens)
    top1[2] = other
    replay = _Replay(parity.Forced(top1, [-0.1] * len(tokens), [-0.1] * len(tokens)))
    replay.forced_result.logprobs[2] = -0.1 - export_margin
    check = parity.greedy_check("F16", tokenizer, [run, run], replay)  # type: ignore[arg-type]
    assert check.passed is passes
    summary = ParityReport(max_new_tokens=8, exact=[check], agreement=[]).summary()
    if passes:
        assert check.matched_prompts == 2 and check.divergence is None and len(check.near_ties) == 2
        assert check.near_ties[0].position == 2 and check.near_ties[0].reference_margin == reference_margin
        assert "2/2 prompts token-exact (2 near-ties accepted), ok" in summary
        assert "near-tie: reference margin 0.0040, export margin 0.0030" in summary
    else:
        assert check.matched_prompts == 0 and not check.near_ties
        assert check.divergence is not None and check.divergence.position == 2
        assert "0/2 prompts token-exact, FAILED" in summary
