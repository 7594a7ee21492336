"""Blue/green switch, the eval gate, rollback and history, and a broken adapter, on the real daemon with real
llama-server backends. The candidates are the starter re-quantized (Q8_0 answers like it, Q2_K worse), so this
module needs no fine-tune; tests/e2e/test_flow.py runs the whole flow from a fine-tune."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from appliance.registry.registry import Registry
from appliance.state.store import StateStore
from appliance.testing.daemon import wait_deployment
from tests.deploytools import StreamingClient, audit_actions, import_model, post, requantize_starter

pytestmark = pytest.mark.slow
LIVE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def models(serving_daemon, tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("candidates")
    imports = serving_daemon.state_dir / "imports"
    imports.mkdir(exist_ok=True)
    # A task golden set: the starter and its Q8_0 answer "4"; its Q2_K does not (checked by hand and below).
    (imports / "arith.jsonl").write_text(json.dumps({"prompt": "What is 2 + 2?", "expected": "4"}) + "\n")
    # Through llama-server the Q8_0 answers "A week is approximately 7 days." and names Shakespeare; the Q2_K
    # lists "Aleph: 1 Zebra: 1 ..." and "Juliet LaRue" (checked by hand): a regression the gate must catch.
    (imports / "regress.jsonl").write_text(
        json.dumps({"prompt": "How many days are in a week?", "expected": "7"}) + "\n"
        + json.dumps({"prompt": "Who wrote Romeo and Juliet?", "expected": "Shakespeare"}) + "\n")
    import_model(serving_daemon, requantize_starter(work / "starter-q8.gguf", "Q8_0"), "starter-q8")
    import_model(serving_daemon, requantize_starter(work / "starter-q2.gguf", "Q2_K"), "starter-q2")
    return {"golden": str(imports / "arith.jsonl"), "regress": str(imports / "regress.jsonl")}


def _deployment(daemon) -> dict:
    return dict(daemon.get(f"/api/v1/deployments/{LIVE}").json())


def test_switch_is_blue_green_while_a_client_streams(serving_daemon, models):
    before = _deployment(serving_daemon)
    with StreamingClient(serving_daemon, LIVE) as client:
        client.wait_completed(3)
        response = post(serving_daemon, f"/api/v1/deployments/{LIVE}/switch",
                        {"model": "starter-q8", "golden": models["golden"], "reason": "test"})
        assert response.status_code == 200, response.text
        at_switch = client.completed
        client.wait_completed(at_switch + 3)
    result = response.json()
    assert client.failures == [], client.failures
    assert result["blue_green"] and not result["forced"]
    assert result["previous_model"] == LIVE and result["model"] == "starter-q8"
    assert result["gate"]["regressed"] is False and "task items passed 1 → 1 of 1" in result["gate"]["reason"]
    assert result["smoke_answer"]
    after = _deployment(serving_daemon)
    assert after["model"] == "starter-q8" and after["state"] == "ready"
    assert after["pid"] != before["pid"] and after["port"] != before["port"]
    with pytest.raises(ProcessLookupError):
        os.kill(before["pid"], 0)  # the old backend drained and stopped
    history = serving_daemon.get(f"/api/v1/deployments/{LIVE}/history").json()
    assert [(h["action"], h["model_name"]) for h in history] == [("switch", "starter-q8"), ("create", LIVE)]


def test_eval_gate_blocks_a_regression_unless_forced(serving_daemon, models):
    before = _deployment(serving_daemon)
    response = post(serving_daemon, f"/api/v1/deployments/{LIVE}/switch",
                    {"model": "starter-q2", "golden": models["regress"]})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "eval_regression"
    assert "task items passed fell from 2 to 0 of 2" in error["message"], error["message"]
    unchanged = _deployment(serving_daemon)
    assert (unchanged["model"], unchanged["pid"], unchanged["state"]) == ("starter-q8", before["pid"], "ready")
    blocked = [a for a in audit_actions(serving_daemon) if a["action"] == "deployment.switch.blocked"]
    assert blocked and blocked[0]["detail"]["candidate"].startswith("starter-q2: task 0/2")

    forced = post(serving_daemon, f"/api/v1/deployments/{LIVE}/switch",
                  {"model": "starter-q2", "golden": models["regress"], "force": True, "reason": "operator knows"})
    assert forced.status_code == 200, forced.text
    assert forced.json()["forced"] is True
    entry = next(a for a in audit_actions(serving_daemon) if a["action"].startswith("deployment.switch"))
    assert entry["action"] == "deployment.switch.forced" and entry["detail"]["gate"]["regressed"] is True
    assert _deployment(serving_daemon)["model"] == "starter-q2"


def test_rollback_in_one_command_with_history(serving_daemon, models):
    env = {**os.environ, "SLM_PORT": str(serving_daemon.port)}
    cli = [sys.executable, "-m", "appliance", "--state-dir", str(serving_daemon.state_dir)]
    done = subprocess.run([*cli, "deploy", "rollback", LIVE, "--reason", "q2 answers badly", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["previous_model"], result["model"], result["action"]) == ("starter-q2", "starter-q8", "rollback")
    assert _deployment(serving_daemon)["model"] == "starter-q8"
    shown = subprocess.run([*cli, "deploy", "history", LIVE], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "rollback" in lines[0] and "starter-q8" in lines[0] and "q2 answers badly" in lines[0]
    assert "FORCED" in lines[1] and "starter-q2" in lines[1]


def _broken_lora(path: Path) -> Path:
    """A GGUF LoRA whose A matrix has the wrong input size for this model: llama-server refuses to load it."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 16.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((8, 100), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((576, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_broken_adapter_leaves_the_previous_set_serving(serving_daemon, models):
    imports = serving_daemon.state_dir / "imports"
    store = StateStore(serving_daemon.state_dir / "state.db").open()
    try:
        Registry(store, serving_daemon.state_dir / "models", [imports]).import_model(
            _broken_lora(imports / "broken-lora.gguf"), "broken-lora", trusted=True, kind="adapter-gguf")
    finally:
        store.close()
    before = _deployment(serving_daemon)
    with StreamingClient(serving_daemon, LIVE) as client:
        response = post(serving_daemon, f"/api/v1/deployments/{LIVE}/adapters", {"adapter": "broken-lora"})
        client.wait_completed(2)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "did not start" in message and "live deployment keeps serving" in message, message
    assert client.failures == []
    after = _deployment(serving_daemon)
    assert (after["pid"], after["adapters"], after["state"]) == (before["pid"], [], "ready")
    assert serving_daemon.get(f"/api/v1/deployments/{LIVE}/adapters").json() == []
    wrong_kind = post(serving_daemon, f"/api/v1/deployments/{LIVE}/adapters", {"adapter": "starter-q2"})
    assert wrong_kind.status_code == 400 and "adapter-gguf" in wrong_kind.json()["error"]["message"]
    wait_deployment(serving_daemon, LIVE)
