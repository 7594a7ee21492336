"""Export of a LoRA adapter on the starter model through the real daemon: merged model, F16 and quantized GGUFs
and a GGUF LoRA, all in the registry with lineage; the parity gate's figures; a corrupted layout that the gate
refuses. The adapter is made directly with PEFT (random non-zero lora_B) instead of a slow fine-tune."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.evaluation.golden import builtin_general
from appliance.export import parity
from appliance.export.pipeline import ParityFailed, check_exports, plan_export
from appliance.export.writer import write_from_template
from appliance.registry.registry import ModelRecord, Registry
from appliance.state.store import StateStore
from appliance.testing.flow import poll_job
from appliance.training.base import resolve_hf_base
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
ADAPTER = "random-lora"


@dataclass
class Lab:
    daemon: DaemonProcess
    registry: Registry
    hf_base: ModelRecord
    result: dict[str, Any] | None = None

    def submit(self, params: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.daemon.url}/api/v1/jobs", headers=self.daemon.admin_headers(),
                          json={"type": "export", "params": params}, timeout=30)

    def wait(self, job_id: str, timeout: float = 420) -> dict[str, Any]:
        return poll_job(self.daemon, job_id, timeout=timeout)


def _random_adapter(base_dir: Path, out: Path) -> Path:
    """A LoRA whose B matrices are non-zero, so merged weights (and some answers) differ from the base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                            "up_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.02)
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("export")
    daemon = DaemonProcess(root / "state").start()
    store = StateStore(daemon.state_dir / "state.db").open()
    registry = Registry(store, daemon.state_dir / "models", [])
    try:
        hf_base = resolve_hf_base(registry, registry.get(STARTER), root / "work")
        adapter_dir = _random_adapter(Path(hf_base.path), root / "adapter")
        registry.import_model(adapter_dir, ADAPTER, trusted=True, kind="adapter", parent_id=hf_base.id)
        yield Lab(daemon, registry, hf_base)
    finally:
        store.close()
        daemon.stop()


def test_export_job_registers_every_artifact_with_lineage_and_parity(lab: Lab) -> None:
    bad = lab.submit({"adapter": STARTER})
    assert bad.status_code == 400 and "not a LoRA adapter" in bad.json()["error"]["message"], bad.text
    missing = lab.submit({"adapter": "no-such-adapter"})
    assert missing.status_code == 404
    wrong = lab.submit({"adapter": ADAPTER, "variants": ["Q3_XS"]})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"].startswith("params.variants")

    response = lab.submit({"adapter": ADAPTER, "variants": ["Q8_0", "Q4_K_M"], "name_prefix": "shop",
                           "max_new_tokens": 24})
    assert response.status_code == 202, response.text
    job = lab.wait(response.json()["id"])
    assert job["state"] == "succeeded", (job, lab.daemon.log()[-3000:])
    result = lab.result = job["result"]
    print("\nparity figures:", result["parity"], "\ntimings:", result["timings_s"], "\n" + result["parity_summary"])
    names = [a["name"] for a in result["artifacts"]]
    assert names == ["shop-merged", "shop-f16", "shop-q8_0", "shop-q4_k_m", "shop-lora-gguf"]
    assert result["parity_exact"] == {"PEFT vs merged (transformers)": "6/6", "F16 GGUF (llama.cpp) vs merged": "6/6",
                                      "GGUF LoRA over F16 base (llama.cpp) vs PEFT": "6/6"}
    figures = result["parity"]
    assert figures["F16"]["top1_agreement"] == 1.0
    assert figures["Q8_0"]["top1_agreement"] >= 0.9 and figures["Q8_0"]["mean_logprob_gap"] <= 0.1
    assert figures["Q4_K_M"]["top1_agreement"] >= 0.7 and figures["Q4_K_M"]["mean_logprob_gap"] <= 0.5

    def chain(name: str) -> list[tuple[str, str]]:
        return [(m["name"], m["kind"]) for m in [lab.daemon.get(f"/api/v1/models/{name}").json()["model"],
                                                 *lab.daemon.get(f"/api/v1/models/{name}").json()["lineage"]]]

    base = [(ADAPTER, "adapter"), (lab.hf_base.name, "hf-base"), (STARTER, "base")]
    assert chain("shop-q4_k_m") == [("shop-q4_k_m", "export"), ("shop-f16", "export"), ("shop-merged", "merged"),
                                    *base]
    assert chain("shop-lora-gguf") == [("shop-lora-gguf", "adapter-gguf"), *base]
    q8 = lab.registry.get("shop-q8_0")
    assert q8.format == "gguf" and q8.quantization == "Q8_0" and len(q8.sha256) == 64
    assert lab.registry.get("shop-f16").quantization == "F16"
    assert q8.metadata["parity_passed"] and q8.metadata["parity"]["agreement"][1]["variant"] == "Q8_0"
    lora = lab.registry.get("shop-lora-gguf")
    assert lora.metadata["gguf_type"] == "adapter" and lora.metadata["serve_over"] == result["lora_base"]
    # The F16 keeps the starter's metadata: its chat template and tokenizer travel with the weights.
    assert lab.registry.get("shop-f16").metadata["has_chat_template"]


def _chat(llm: Any, prompt: str, max_tokens: int) -> str:
    out = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                     temperature=0.0, top_k=1, seed=0)
    return str(out["choices"][0]["message"]["content"]).strip()


def test_gguf_lora_and_f16_answer_like_peft_through_llama_cpps_own_chat_path(lab: Lab) -> None:
    """Independent of the gate's token feeding: llama.cpp tokenizes and templates the prompts itself."""
    from llama_cpp import Llama

    assert lab.result is not None, "needs the export job of the previous test"
    answers = lab.registry.get("shop-f16").metadata["parity"]["answers"]
    tokens = lab.registry.get("shop-f16").metadata["parity"]["max_new_tokens"]
    served = [(lab.registry.get(lab.result["lora_base"]).file, lab.registry.get("shop-lora-gguf").file, "peft"),
              (lab.registry.get("shop-f16").file, None, "merged")]
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


def test_wrong_qk_layout_fails_the_gate_naming_prompt_and_position(lab: Lab, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert lab.result is not None, "needs the export job of the first test"
    torch.set_num_threads(parity.gate_threads())
    plan = plan_export(lab.registry, ADAPTER, ["Q8_0"], "shop")
    merged = lab.registry.get("shop-merged")
    broken = write_from_template(lab.registry.get(STARTER).file, Path(merged.path), tmp_path / "broken.gguf",
                                 "broken", interleave_qk=False)
    items = builtin_general()[:2]
    tokenizer = AutoTokenizer.from_pretrained(lab.hf_base.path)
    reference = parity.transformers_runs(AutoModelForCausalLM.from_pretrained(merged.path, dtype=torch.float32),
                                         tokenizer, items, 16)
    base = AutoModelForCausalLM.from_pretrained(lab.hf_base.path, dtype=torch.float32)
    peft = parity.transformers_runs(PeftModel.from_pretrained(base, plan.adapter.path), tokenizer, items, 16)
    report = check_exports(tokenizer, reference, peft, broken, lab.registry.get(lab.result["lora_base"]).file,
                           lab.registry.get("shop-lora-gguf").file, {"Q8_0": lab.registry.get("shop-q8_0").file}, 16)
    assert not report.passed
    f16 = next(c for c in report.exact if c.name.startswith("F16"))
    assert f16.matched_prompts == 0 and f16.divergence is not None
    assert f16.divergence.prompt == items[0].prompt and f16.divergence.position >= 0
    assert report.agreement[0].variant == "F16" and report.agreement[0].top1_agreement < 0.9
    assert report.agreement[1].passed  # the sound Q8_0 file still passes next to the broken one
    message = str(ParityFailed(report))
    print("\n" + message)
    assert f"prompt {items[0].prompt!r}: diverges at generated token {f16.divergence.position}" in message
    assert "expected:" in message and "got:" in message and "F16 GGUF (llama.cpp) vs merged: 0/2" in message
