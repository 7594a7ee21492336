"""The whole update flow on the starter model, end to end through the real daemon: a small fine-tune → export
Q8_0 and Q4_K_M behind the parity gate → the GGUF LoRA served live answers like the PEFT model → blue/green
switch to the fine-tuned Q8_0 while a client streams without a single failure → rollback in one call. The
attached adapter survives a daemon restart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from appliance.evaluation.golden import builtin_general, load_golden
from appliance.testing.daemon import wait_deployment
from appliance.testing.flow import deploy_call, export, finetune, import_dataset
from appliance.testing.shopfloor import write_dataset, write_golden
from tests.deploytools import StreamingClient
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
ANSWER_TOKENS = 24


@dataclass
class Flow:
    daemon: DaemonProcess
    golden: Path
    trained: dict[str, Any]
    exported: dict[str, Any]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("e2e") / "state").start()
    try:
        wait_deployment(daemon, STARTER)
        imports = daemon.state_dir / "imports"
        golden = write_golden(imports / "golden.jsonl")
        import_dataset(daemon, str(write_dataset(imports / "shop.jsonl")), "shop", STARTER)
        trained = finetune(daemon, {"base_model": STARTER, "dataset": "shop", "golden": str(golden),
                                    "adapter_name": "shop-lora",
                                    "overrides": {"max_steps": 16, "learning_rate": 1e-3}})
        # No golden set named: the export takes the one the adapter was fine-tuned with, from its lineage.
        exported = export(daemon, {"adapter": "shop-lora", "variants": ["Q8_0", "Q4_K_M"]})
        yield Flow(daemon, golden, trained["result"], exported["result"])
    finally:
        daemon.stop()


def _client(daemon: DaemonProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0, timeout=120)


def test_fine_tune_and_export_pass_their_gates(flow: Flow) -> None:
    assert flow.trained["golden_after"].startswith("task 2/2"), flow.trained
    names = {a["name"]: a for a in flow.exported["artifacts"]}
    assert {"shop-lora-q8_0", "shop-lora-q4_k_m", "shop-lora-f16", "shop-lora-lora-gguf"} <= set(names)
    assert names["shop-lora-q4_k_m"]["quantization"] == "Q4_K_M"
    # 2 task prompts (the fine-tune's golden set) + 6 built-in general ones, all token-exact (or near-ties).
    prompts = len(load_golden(flow.golden)) + len(builtin_general())
    assert flow.exported["parity_exact"]["F16 GGUF (llama.cpp) vs merged"] == f"{prompts}/{prompts}", flow.exported
    assert flow.exported["parity_exact"]["GGUF LoRA over F16 base (llama.cpp) vs PEFT"] == f"{prompts}/{prompts}"


def _peft_answers(flow: Flow, prompts: list[str]) -> list[str]:
    """Greedy answers of the PEFT model (adapter over its HF base, fp32) in the test process."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = flow.daemon.get("/api/v1/models/shop-lora").json()
    base_dir, adapter_dir = adapter["lineage"][0]["path"], adapter["model"]["path"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
                                      adapter_dir).eval()
    answers = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=ANSWER_TOKENS, do_sample=False)
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return answers


def test_adapter_served_live_answers_like_peft(flow: Flow) -> None:
    daemon = flow.daemon
    base_f16 = flow.exported["lora_base"]
    deploy_call(daemon, "POST", "/api/v1/deployments", {"model": base_f16, "name": "shop-base"}, expect=201)
    wait_deployment(daemon, "shop-base")
    attached = deploy_call(daemon, "POST", "/api/v1/deployments/shop-base/adapters",
                           {"adapter": "shop-lora-lora-gguf", "name": "shop-assistant"})
    assert attached["deployment"]["adapters"] == ["shop-assistant"]
    prompts = [item.prompt for item in load_golden(flow.golden) + builtin_general()]
    client = _client(daemon)

    def served(model: str) -> list[str]:
        return [(client.chat.completions.create(model=model, messages=[{"role": "user", "content": p}],
                                                max_tokens=ANSWER_TOKENS, temperature=0)
                 .choices[0].message.content or "").strip() for p in prompts]

    live = served("shop-assistant")
    assert live == _peft_answers(flow, prompts)
    assert live[0].startswith("ACME-BOT")
    assert served("shop-base")[0] != live[0]  # the base name stays the plain base model
    assert {"shop-base", "shop-assistant"} <= {m.id for m in client.models.list().data}
    assert client.models.retrieve("shop-assistant").id == "shop-assistant"  # the adapter's own name

    daemon.stop()  # the attached set is persisted: after a restart the adapter serves again
    daemon.start()
    wait_deployment(daemon, "shop-base")
    assert served("shop-assistant")[:1] == live[:1]
    detached = deploy_call(daemon, "DELETE", "/api/v1/deployments/shop-base/adapters/shop-assistant")
    assert detached["deployment"]["adapters"] == []
    with pytest.raises(openai.NotFoundError):
        served("shop-assistant")
    deploy_call(daemon, "DELETE", "/api/v1/deployments/shop-base")


def test_blue_green_switch_under_streaming_then_rollback(flow: Flow) -> None:
    daemon = flow.daemon
    with StreamingClient(daemon, STARTER) as client:
        client.wait_completed(3)
        switched = deploy_call(daemon, "POST", f"/api/v1/deployments/{STARTER}/switch",
                               {"model": "shop-lora-q8_0", "reason": "shop-floor fine-tune"})
        client.wait_completed(client.completed + 3)
        rolled = deploy_call(daemon, "POST", f"/api/v1/deployments/{STARTER}/rollback", {})
        client.wait_completed(client.completed + 3)
    assert client.failures == [], client.failures
    gate = switched["gate"]
    assert gate["golden"] == str(flow.golden)  # the fine-tune's golden set, from the lineage
    assert gate["regressed"] is False and gate["candidate"].startswith("shop-lora-q8_0: task 2/2"), gate
    assert switched["blue_green"] and switched["deployment"]["model"] == "shop-lora-q8_0"
    assert (rolled["action"], rolled["model"]) == ("rollback", STARTER)
    history = daemon.get(f"/api/v1/deployments/{STARTER}/history").json()
    assert [(h["action"], h["model_name"]) for h in history] == [
        ("rollback", STARTER), ("switch", "shop-lora-q8_0"), ("create", STARTER)]
    question = [{"role": "user", "content": "The drill is making a grinding noise. What should I do?"}]
    answer = _client(daemon).chat.completions.create(model=STARTER, messages=question, max_tokens=ANSWER_TOKENS,
                                                     temperature=0).choices[0].message.content or ""
    assert not answer.startswith("ACME-BOT")  # the starter is back
