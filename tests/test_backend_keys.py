"""Every backend process that takes a key gets its own, and one its command line parses: a key starting with
'-' made vLLM's argparse refuse `--api-key` (exit 2, seen once in CI: 1.5 % of urlsafe tokens start so)."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.backends.llamacpp import LlamaCppBackend
from appliance.backends.vllm import VllmBackend
from appliance.deploy.models import DeploymentParams
from appliance.deploy.parts import DeploymentParts
from appliance.profiles import select_profile
from appliance.profiles.schema import Profile
from appliance.registry.registry import ModelRecord, Registry
from appliance.state.store import StateStore
from tests.conftest import recorded_machine


def test_every_backend_process_gets_a_distinct_key_that_parses(profiles: list[Profile],
                                                                      tmp_path: Path) -> None:
    report = recorded_machine("linux_cpu_only_nvml_library_not_found.json", tmp_path)
    store = StateStore(tmp_path / "state.db").open()
    # The service's parts (internal to appliance.deploy): the planner and the reconciler that makes processes.
    parts = DeploymentParts(store, Registry(store, tmp_path / "models", [tmp_path]), select_profile(profiles, report),
                            report, {"llamacpp": LlamaCppBackend(tmp_path), "vllm": VllmBackend(tmp_path)}, tmp_path,
                            tmp_path)
    model = ModelRecord(id="m", name="m", kind="base", format="hf", path=str(tmp_path), sha256="0" * 64,
                        size_bytes=1, architecture="llama", params=int(1.35e8), context_length=2048,
                        quantization=None, parent_id=None, source="test", metadata={}, created_at=time.time())
    keys = set()
    for backend in ("vllm", "llamacpp"):
        plan = parts.planner.plan("chat", model, DeploymentParams(), backend, check=False)
        for _ in range(300 if backend == "vllm" else 3):
            spec = parts.reconciler.new_process(plan, []).process.spec
            assert spec.api_key is not None and not spec.api_key.startswith("-")
            # Both listen on a socket in the private runtime dir (vLLM on it alone, llama-server beside its port).
            assert spec.unix_socket is not None and spec.unix_socket.parent == tmp_path
            keys.add(spec.api_key)
    assert len(keys) == 303
