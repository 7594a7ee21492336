"""The whole update flow on the starter model, end to end through the real daemon: a small fine-tune (progress,
loss, golden answer, lineage, the standalone eval) → export Q8_0 and Q4_K_M behind the parity gate → the GGUF LoRA
served live answers like the PEFT model → blue/green switch to the fine-tuned Q8_0 while a client streams without
a single failure → rollback in one call. The attached adapter survives a daemon restart. The fine-tune and export
are made once for the package (tests/e2e/conftest.py)."""

from __future__ import annotations

import openai
import pytest

from appliance.evaluation.golden import builtin_general, load_golden
from appliance.testing.daemon import wait_deployment
from appliance.testing.flow import deploy_call, poll_job, submit
from tests.deploytools import StreamingClient
from tests.e2e.conftest import ADAPTER, STARTER, STEPS, Flow
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
ANSWER_TOKENS = 24


def _client(daemon: DaemonProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0, timeout=120)


def test_lora_run_lowers_eval_loss_and_moves_the_golden_answer(flow: Flow) -> None:
    training = [e for e in flow.events if e["event"] == "progress" and e["phase"] == "training"]
    assert [e["step"] for e in training] == list(range(1, STEPS + 1))
    assert all(e["total"] == STEPS and e["loss"] > 0 and e["tokens_per_s"] > 0 and e["eta_s"] >= 0
               and e["epoch"] > 0 for e in training)
    assert all(e["learning_rate"] > 0 for e in training[:-1])  # linear decay reaches 0 at the last step
    result = flow.trained
    assert result["eval_loss_after"] < result["eval_loss_before"] * 0.5, result
    before, after = result["golden_before"], result["golden_after"]
    assert before.startswith("task 0/2") and after.startswith("task 2/2"), (before, after)

    detail = flow.daemon.get(f"/api/v1/models/{ADAPTER}").json()
    adapter = detail["model"]
    assert adapter["format"] == "peft" and adapter["kind"] == "adapter"
    assert [m["kind"] for m in detail["lineage"]] == ["hf-base", "base"]
    meta = adapter["metadata"]
    assert meta["dataset"]["name"] == "shop" and meta["dataset"]["version"] == 1
    assert meta["hyperparameters"]["lora_r"] == 16 and meta["hyperparameters"]["learning_rate"] == 1e-3
    assert meta["metrics"]["steps"] == STEPS and len(meta["metrics"]["losses"]) == STEPS
    assert meta["golden"]["after"]["items"][0]["answer"].startswith("ACME-BOT")
    assert meta["code_version"] and meta["base_model"]["name"] == STARTER


def test_standalone_eval_scores_the_adapter_as_its_fine_tune_did(flow: Flow) -> None:
    job_id = submit(flow.daemon, "/api/v1/jobs", {"type": "eval", "params": {
        "model": ADAPTER, "golden": str(flow.golden), "dataset": "shop"}})
    done = poll_job(flow.daemon, job_id, timeout=300)
    assert done["state"] == "succeeded", done
    assert done["result"]["summary"] == flow.trained["golden_after"]
    assert done["result"]["eval_loss"] == pytest.approx(flow.trained["eval_loss_after"], rel=1e-3)
    stored = flow.daemon.get(f"/api/v1/models/{ADAPTER}").json()["model"]["metadata"]["evaluations"]
    assert stored[-1]["summary"] == flow.trained["golden_after"]


def test_fine_tune_and_export_pass_their_gates(flow: Flow) -> None:
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
