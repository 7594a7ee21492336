"""ENOSPC on a real daemon, with a small tmpfs (root; skipped with the reason elsewhere): a model import and
an export fail with a clear error and leave nothing behind; with the state disk full to the last byte a
backend killed with -9 still comes back and answers, and its row catches up once space is freed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.registry.registry import Registry
from appliance.registry.starter import find_starter_gguf
from appliance.state.store import StateStore
from appliance.testing.daemon import wait_deployment
from appliance.testing.flow import poll_job, submit
from appliance.training.base import resolve_hf_base
from tests.deploytools import post
from tests.faulttools import assert_consistent, children, fill, tmpfs
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"


def _kill_backend_and_see_it_answer(daemon: DaemonProcess) -> int:
    """kill -9 the llama-server child; supervision must start a new one that answers. Returns its pid."""
    old = children(daemon.proc.pid, "llama-server")
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = children(daemon.proc.pid, "llama-server")
        if now and now != old:
            answer = post(daemon, "/v1/chat/completions", {"model": STARTER, "max_tokens": 4,
                                                           "messages": [{"role": "user", "content": "Hi"}]})
            if answer.status_code == 200:
                return now[0]
        time.sleep(0.2)
    raise AssertionError(f"backend not back after kill -9:\n{daemon.log()[-3000:]}")


def test_full_state_disk_import_refused_and_supervision_goes_on(tmp_path: Path) -> None:
    starter = find_starter_gguf()
    assert starter is not None
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(starter, outside / "copy.gguf")
    # Room for the starter the daemon imports at first start, its logs and the store; not for a second copy.
    with tmpfs(tmp_path / "state", starter.stat().st_size // 2**20 + 40) as state:
        daemon = DaemonProcess(state, env={"SLM_IMPORT_ROOTS": json.dumps([str(outside)])}).start()
        try:
            wait_deployment(daemon, STARTER)
            refused = httpx.post(f"{daemon.url}/api/v1/models", headers=daemon.admin_headers(), timeout=60,
                                 json={"path": str(outside / "copy.gguf"), "name": "copy"})
            assert refused.status_code == 507, refused.text
            error = refused.json()["error"]
            assert error["code"] == "insufficient_storage"
            assert "not imported, no space left in" in error["message"] and "free space" in error["message"]
            assert [m["name"] for m in daemon.get("/api/v1/models").json()] == [STARTER]
            assert_consistent(state)

            filler = fill(state)  # now every write to the state disk fails: the store's included
            new_pid = _kill_backend_and_see_it_answer(daemon)
            assert '"error": "database or disk is full"' in daemon.log()  # its state writes failed, it went on
            filler.unlink()
            back = wait_deployment(daemon, STARTER)  # the row catches up on a health check
            deadline = time.monotonic() + 30
            while back["pid"] != new_pid and time.monotonic() < deadline:
                time.sleep(0.3)
                back = wait_deployment(daemon, STARTER)
            assert back["pid"] == new_pid and back["restarts"] >= 1, back
            assert_consistent(state)
        finally:
            daemon.stop()


def _random_adapter(base_dir: Path, out: Path) -> Path:
    """A LoRA whose B matrices are non-zero, so merged weights differ from the base (no fine-tune needed)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.02)
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture
def adapter_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path / "state").start()
    store = StateStore(daemon.state_dir / "state.db").open()
    try:
        registry = Registry(store, daemon.state_dir / "models", [])
        hf_base = resolve_hf_base(registry, registry.get(STARTER), tmp_path / "work")
        adapter = _random_adapter(Path(hf_base.path), tmp_path / "adapter")
        registry.import_model(adapter, "random-lora", trusted=True, kind="adapter", parent_id=hf_base.id)
        yield daemon
    finally:
        store.close()
        daemon.stop()


def test_full_disk_during_export_fails_the_job_clearly(adapter_daemon: DaemonProcess) -> None:
    daemon = adapter_daemon
    models_before = sorted(m["name"] for m in daemon.get("/api/v1/models").json())
    # The job folders on a 48 MiB disk: the merged model alone needs ten times that.
    with tmpfs(daemon.state_dir / "jobs", 48):
        job_id = submit(daemon, "/api/v1/jobs", {"type": "export", "params": {"adapter": "random-lora",
                                                                             "variants": ["Q8_0"]}})
        job = poll_job(daemon, job_id, timeout=600)
        assert job["state"] == "failed", job
        assert "export stopped: no space left on device writing" in job["error"], job["error"]
        assert "free space and submit it again" in job["error"]
    assert sorted(m["name"] for m in daemon.get("/api/v1/models").json()) == models_before
    _kill_backend_and_see_it_answer(daemon)
    assert_consistent(daemon.state_dir)
