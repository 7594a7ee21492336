"""Export of the package's fine-tuned LoRA (tests/e2e/conftest.py) through the real daemon: merged model, F16 and
quantized GGUFs and a GGUF LoRA, all in the registry with lineage; the parity gate's figures; llama.cpp's own chat
path answers like PEFT; a corrupted layout that the gate refuses. The parameter checks of an export job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.evaluation.golden import builtin_general, load_golden
from appliance.export import parity
from appliance.export.pipeline import ParityFailed, check_exports, plan_export
from appliance.export.writer import write_from_template
from appliance.registry.registry import Registry
from appliance.state.store import StateStore
from tests.e2e.conftest import ADAPTER, STARTER, Flow

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(flow: Flow) -> Iterator[Registry]:
    """The daemon's registry, read beside it (SQLite WAL: a second reader is fine)."""
    store = StateStore(flow.daemon.state_dir / "state.db").open()
    try:
        yield Registry(store, flow.daemon.state_dir / "models", [])
    finally:
        store.close()


def _submit(flow: Flow, params: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{flow.daemon.url}/api/v1/jobs", headers=flow.daemon.admin_headers(),
                      json={"type": "export", "params": params}, timeout=30)


def test_export_job_refuses_what_it_cannot_export(flow: Flow) -> None:
    bad = _submit(flow, {"adapter": STARTER})
    assert bad.status_code == 400 and "not a LoRA adapter" in bad.json()["error"]["message"], bad.text
    missing = _submit(flow, {"adapter": "no-such-adapter"})
    assert missing.status_code == 404
    wrong = _submit(flow, {"adapter": ADAPTER, "variants": ["Q3_XS"]})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"].startswith("params.variants")


def test_export_registers_every_artifact_with_lineage_and_parity(flow: Flow, registry: Registry) -> None:
    result = flow.exported
    print("\nparity figures:", result["parity"], "\ntimings:", result["timings_s"], "\n" + result["parity_summary"])
    names = [a["name"] for a in result["artifacts"]]
    assert names == [f"{ADAPTER}-merged", f"{ADAPTER}-f16", f"{ADAPTER}-q8_0", f"{ADAPTER}-q4_k_m",
                     f"{ADAPTER}-lora-gguf"]
    # 2 task prompts (the fine-tune's golden set, taken from the lineage) + 6 built-in general ones, token-exact.
    prompts = len(load_golden(flow.golden)) + len(builtin_general())
    assert result["parity_exact"] == {"PEFT vs merged (transformers)": f"{prompts}/{prompts}",
                                      "F16 GGUF (llama.cpp) vs merged": f"{prompts}/{prompts}",
                                      "GGUF LoRA over F16 base (llama.cpp) vs PEFT": f"{prompts}/{prompts}"}
    figures = result["parity"]
    assert figures["F16"]["top1_agreement"] == 1.0
    assert figures["Q8_0"]["top1_agreement"] >= 0.9 and figures["Q8_0"]["mean_logprob_gap"] <= 0.1
    assert figures["Q4_K_M"]["top1_agreement"] >= 0.7 and figures["Q4_K_M"]["mean_logprob_gap"] <= 0.5

    def chain(name: str) -> list[tuple[str, str]]:
        detail = flow.daemon.get(f"/api/v1/models/{name}").json()
        return [(m["name"], m["kind"]) for m in [detail["model"], *detail["lineage"]]]

    hf_base = chain(ADAPTER)[1][0]
    base = [(ADAPTER, "adapter"), (hf_base, "hf-base"), (STARTER, "base")]
    assert chain(f"{ADAPTER}-q4_k_m") == [(f"{ADAPTER}-q4_k_m", "export"), (f"{ADAPTER}-f16", "export"),
                                          (f"{ADAPTER}-merged", "merged"), *base]
    assert chain(f"{ADAPTER}-lora-gguf") == [(f"{ADAPTER}-lora-gguf", "adapter-gguf"), *base]
    q8 = registry.get(f"{ADAPTER}-q8_0")
    assert q8.format == "gguf" and q8.quantization == "Q8_0" and len(q8.sha256) == 64
    assert registry.get(f"{ADAPTER}-f16").quantization == "F16"
    assert q8.metadata["parity_passed"] and q8.metadata["parity"]["agreement"][1]["variant"] == "Q8_0"
    lora = registry.get(f"{ADAPTER}-lora-gguf")
    assert lora.metadata["gguf_type"] == "adapter" and lora.metadata["serve_over"] == result["lora_base"]
    # The F16 keeps the starter's metadata: its chat template and tokenizer travel with the weights.
    assert registry.get(f"{ADAPTER}-f16").metadata["has_chat_template"]


def _chat(llm: Any, prompt: str, max_tokens: int) -> str:
    out = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                     temperature=0.0, top_k=1, seed=0)
    return str(out["choices"][0]["message"]["content"]).strip()


def test_gguf_lora_and_f16_answer_like_peft_through_llama_cpps_own_chat_path(flow: Flow,
                                                                             registry: Registry) -> None:
    """Independent of the gate's token feeding: llama.cpp tokenizes and templates the prompts itself."""
    from llama_cpp import Llama

    answers = registry.get(f"{ADAPTER}-f16").metadata["parity"]["answers"]
    tokens = registry.get(f"{ADAPTER}-f16").metadata["parity"]["max_new_tokens"]
    served = [(registry.get(flow.exported["lora_base"]).file, registry.get(f"{ADAPTER}-lora-gguf").file, "peft"),
              (registry.get(f"{ADAPTER}-f16").file, None, "merged")]
    for model_path, lora_path, expected in served:
        llm = Llama(model_path=str(model_path), lora_path=str(lora_path) if lora_path else None, n_ctx=512,
                    n_threads=parity.gate_threads(), verbose=False, seed=0)
        try:
            got = [_chat(llm, a["prompt"], tokens) for a in answers]
        finally:
            llm.close()
        assert got == [a[expected] for a in answers], (expected, got)
    # The adapter does change the model: without it, the F16 base answers at least one prompt differently.
    llm = Llama(model_path=str(served[0][0]), n_ctx=512, n_threads=parity.gate_threads(), verbose=False, seed=0)
    try:
        plain = [_chat(llm, a["prompt"], tokens) for a in answers[3:]]
    finally:
        llm.close()
    assert plain != [a["peft"] for a in answers[3:]]


def test_wrong_qk_layout_fails_the_gate_naming_prompt_and_position(flow: Flow, registry: Registry,
                                                                   tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(parity.gate_threads())
    plan = plan_export(registry, ADAPTER, ["Q8_0"], "shop")
    merged = registry.get(f"{ADAPTER}-merged")
    broken = write_from_template(registry.get(STARTER).file, Path(merged.path), tmp_path / "broken.gguf",
                                 "broken", interleave_qk=False)
    items = load_golden(flow.golden) + builtin_general()  # the export gate's prompts: enough positions for Q8_0
    tokenizer = AutoTokenizer.from_pretrained(plan.hf_base.path)
    reference = parity.transformers_runs(AutoModelForCausalLM.from_pretrained(merged.path, dtype=torch.float32),
                                         tokenizer, items, 16)
    base = AutoModelForCausalLM.from_pretrained(plan.hf_base.path, dtype=torch.float32)
    peft = parity.transformers_runs(PeftModel.from_pretrained(base, plan.adapter.path), tokenizer, items, 16)
    lora_base, lora = registry.get(flow.exported["lora_base"]).file, registry.get(f"{ADAPTER}-lora-gguf").file
    report = check_exports(tokenizer, reference, peft, broken, lora_base, lora,
                           {"Q8_0": registry.get(f"{ADAPTER}-q8_0").file}, 16)
    assert not report.passed
    f16 = next(c for c in report.exact if c.name.startswith("F16"))
    assert f16.matched_prompts == 0 and f16.divergence is not None
    assert f16.divergence.prompt == items[0].prompt and f16.divergence.position >= 0
    assert report.agreement[0].variant == "F16" and report.agreement[0].top1_agreement < 0.9
    assert report.agreement[1].passed  # the sound Q8_0 file still passes next to the broken one
    message = str(ParityFailed(report))
    print("\n" + message)
    assert f"prompt {items[0].prompt!r}: diverges at generated token {f16.divergence.position}" in message
    assert "expected:" in message and "got:" in message and "F16 GGUF (llama.cpp) vs merged: 0/8" in message
