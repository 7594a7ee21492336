"""vLLM for real, through its CPU build (`make vllm`): the daemon serves the starter as an HF folder on vLLM
through our gateway (official `openai` client), a LoRA adapter from a real fine-tune job is attached at runtime
and answers under its own name exactly as the PEFT model does, the adapter set comes back after a daemon
restart, and the llama.cpp deployment switches blue/green to vLLM without a failed request."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from appliance.backends.base import BackendUnavailable
from appliance.backends.vllm import find_vllm_python
from appliance.testing.daemon import DaemonProcess, backend_key_headers, backend_socket, wait_deployment
from appliance.testing.flow import deploy_call, finetune, import_dataset
from appliance.testing.shopfloor import GOLDEN, write_dataset, write_golden
from tests.deploytools import StreamingClient

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
STARTER = "smollm2-135m-instruct"
HF_BASE = f"{STARTER}-hf"  # the fine-tune's GGUF → HF conversion, registered as the adapter's parent
SERVED = "smol-vllm"
ADAPTER = "shop-vllm"
PROMPTS = [item["prompt"] for item in GOLDEN] + ["What is the capital of France?", "Name three primary colours."]
TOKENS = 24


def _vllm_installed() -> bool:
    try:
        find_vllm_python()
    except BackendUnavailable:
        return False
    return True


if not _vllm_installed():
    # `make test` builds it and sets SLM_REQUIRE_VLLM: there a missing vLLM fails instead of skipping.
    if os.environ.get("SLM_REQUIRE_VLLM"):
        raise RuntimeError("vLLM's CPU build is missing: run `make vllm`")
    pytest.skip("vLLM's CPU build is not installed (make vllm)", allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, dict[str, Any]]]:
    """A daemon with a fine-tuned adapter of the starter and the starter's HF folder deployed on vLLM."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("vllm") / "state").start()
    try:
        wait_deployment(daemon, STARTER)
        imports = daemon.state_dir / "imports"
        write_dataset(imports / "shop.jsonl", 40)
        write_golden(imports / "golden.jsonl")
        import_dataset(daemon, str(imports / "shop.jsonl"), "shop", STARTER)
        job = finetune(daemon, {"base_model": STARTER, "dataset": "shop", "adapter_name": "shop-lora",
                                "golden": str(imports / "golden.jsonl"),
                                "overrides": {"max_steps": 10, "learning_rate": 1e-3}})
        created = deploy_call(daemon, "POST", "/api/v1/deployments", {"model": HF_BASE, "name": SERVED}, 201)
        assert created["backend"] == "vllm", created
        assert created["backend_reason"] == "vllm: hf models are served by vllm (the cpu profile prefers llamacpp)"
        wait_deployment(daemon, SERVED, timeout=300)
        yield daemon, job
    finally:
        daemon.stop()


def _greedy(client: openai.OpenAI, model: str) -> list[str]:
    answers = []
    for prompt in PROMPTS:
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                               max_tokens=TOKENS, temperature=0)
        answers.append(reply.choices[0].message.content or "")
    return answers


def _peft_greedy(base_dir: Path, adapter_dir: Path | None) -> list[str]:
    """The same prompts, greedy, through transformers (+ PEFT): what vLLM must reproduce."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    answers = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=TOKENS, do_sample=False)
        answers.append(tokenizer.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def _model_dir(daemon: DaemonProcess, name: str) -> Path:
    return Path(daemon.get(f"/api/v1/models/{name}").json()["model"]["path"])


def test_vllm_serves_through_the_gateway_and_only_through_it(lab: tuple[DaemonProcess, dict[str, Any]]) -> None:
    daemon, _ = lab
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0)
    answers = _greedy(client, SERVED)
    assert answers == _peft_greedy(_model_dir(daemon, HF_BASE), None)
    deployment = daemon.get(f"/api/v1/deployments/{SERVED}").json()
    assert deployment["injected_args"]["security"].startswith("API key in $VLLM_API_KEY")
    assert "--enforce-eager" in deployment["injected_args"]["compute"]
    assert "--dtype float32" in deployment["injected_args"]["batching"]
    # vLLM listens on its Unix socket alone (the gateway's hop; no TCP port), private to the daemon's user, and
    # answers nobody there without its key: keys, limits and queues cannot be bypassed.
    assert deployment["port"] is None
    socket_path = Path(backend_socket(int(deployment["pid"])))
    assert socket_path.stat().st_mode & 0o077 == 0 and socket_path.parent.stat().st_mode & 0o077 == 0
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), timeout=30) as unix:
        assert unix.post("http://backend/v1/chat/completions", json=body).status_code == 401
        keyed = unix.post("http://backend/v1/chat/completions", json=body,
                          headers=backend_key_headers(int(deployment["pid"])))
        assert keyed.status_code == 200
    assert "--port" not in Path(f"/proc/{deployment['pid']}/cmdline").read_bytes().decode().split("\0")
    metrics = daemon.get("/metrics").text
    assert f'slm_backend_vllm_num_requests_running{{deployment="{SERVED}",' in metrics


def test_adapter_attached_at_runtime_answers_as_peft_and_survives_a_restart(
        lab: tuple[DaemonProcess, dict[str, Any]]) -> None:
    daemon, job = lab
    before = daemon.get(f"/api/v1/deployments/{SERVED}").json()
    result = deploy_call(daemon, "POST", f"/api/v1/deployments/{SERVED}/adapters",
                         {"adapter": job["result"]["adapter"], "name": ADAPTER})
    assert result["blue_green"] is False and result["deployment"]["adapters"] == [ADAPTER]
    assert result["deployment"]["pid"] == before["pid"]  # loaded into the running process: no restart
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0)
    expected = _peft_greedy(_model_dir(daemon, HF_BASE), _model_dir(daemon, job["result"]["adapter"]))
    tuned = _greedy(client, ADAPTER)
    assert tuned == expected
    assert tuned[0].startswith("ACME-BOT") and tuned != _greedy(client, SERVED)
    assert client.models.retrieve(ADAPTER).id == ADAPTER
    wrong = httpx.post(f"{daemon.url}/api/v1/deployments/{SERVED}/adapters", headers=daemon.admin_headers(),
                       json={"adapter": job["result"]["adapter"], "name": "shop-scaled", "scale": 0.5}, timeout=60)
    assert wrong.status_code == 400 and "scale 1.0 only" in wrong.json()["error"]["message"]
    assert daemon.stop() == 0
    daemon.start()
    wait_deployment(daemon, SERVED, timeout=300)
    assert daemon.get(f"/api/v1/deployments/{SERVED}").json()["adapters"] == [ADAPTER]
    assert _greedy(client, ADAPTER) == tuned


def test_llamacpp_deployment_switches_to_vllm_without_a_failed_request(
        lab: tuple[DaemonProcess, dict[str, Any]]) -> None:
    daemon, _ = lab
    wait_deployment(daemon, STARTER)
    with StreamingClient(daemon, STARTER) as streaming:
        streaming.wait_completed(2, timeout=120)
        # The eval gate compares a Q4_1 GGUF with its fp32 HF folder; which one wins a general prompt is not the
        # point here: forced, and audited as forced.
        result = deploy_call(daemon, "POST", f"/api/v1/deployments/{STARTER}/switch",
                             {"model": HF_BASE, "force": True, "reason": "to vLLM"})
        at_switch = streaming.completed
        streaming.wait_completed(at_switch + 2, timeout=120)
    assert streaming.failures == [], streaming.failures
    assert result["blue_green"] and result["previous_model"] == STARTER and result["model"] == HF_BASE
    after = daemon.get(f"/api/v1/deployments/{STARTER}").json()
    assert after["backend"] == "vllm" and after["state"] == "ready", after
    rolled = deploy_call(daemon, "POST", f"/api/v1/deployments/{STARTER}/rollback", {"reason": "back"})
    assert rolled["model"] == STARTER and rolled["deployment"]["backend"] == "llamacpp"
