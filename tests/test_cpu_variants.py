"""llama.cpp's CPU variants checked on this CPU (appliance/backends/cpu_variants.py), on a real build of them
(scripts/build-llama-server.sh with SLM_LLAMA_CPU_VARIANTS=1): the baseline variant forced (what a CPU without
AVX-512 loads) and the best one that runs here both serve the starter through a real llama-server; a variant
that dies on this CPU is refused with the signal that killed it; the choice is kept and not made again; `detect`
shows it; a second build takes seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from appliance.backends.base import BUILD_CACHE, LaunchSpec
from appliance.backends.cpu_variants import choose, loaded_variant, variants_in
from appliance.backends.llamacpp import LLAMA_CPP_VERSION, LlamaCppBackend
from appliance.registry.starter import find_starter_gguf
from appliance.testing.daemon import free_port

REPO = Path(__file__).resolve().parents[1]
VARIANTS_BIN = BUILD_CACHE / f"llama.cpp-{LLAMA_CPP_VERSION}-cpu-variants" / "bin"
pytestmark = pytest.mark.skipif(not variants_in(VARIANTS_BIN),
                                reason="needs the CPU-variants build (SLM_LLAMA_CPU_VARIANTS=1 make llama)")


def _serves(bin_dir: Path, log: Path) -> str:
    """Start llama-server from `bin_dir` on the starter, ask it for a few tokens, stop it: the text it wrote."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen([str(bin_dir / "llama-server"), "--model", str(find_starter_gguf()), "--port",
                                   str(port), "--threads", "2", "--ctx-size", "512"], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=60,
                            json={"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["choices"][0]["text"])
    finally:
        server.terminate()
        server.wait(30)


def test_the_baseline_variant_forced_serves(tmp_path: Path) -> None:
    backend = LlamaCppBackend(VARIANTS_BIN, tmp_path / "views", cpu_variant="x64")
    launch = backend.build_launch(LaunchSpec(deployment="chat", model_path=find_starter_gguf(),  # type: ignore[arg-type]
                                             port=free_port()))
    choice = backend.cpu_variant()
    assert choice is not None and choice.variant == "x64" and choice.forced and choice.refused == {}
    view = Path(choice.bin_dir)
    # The command line (the deployment log's first line) starts in the x64 view; the operator is shown the variant.
    assert launch.argv[0] == str(view / "llama-server") and launch.injected["cpu_variant"] == "x64 (forced)"
    assert variants_in(view) == ["x64"] and loaded_variant(view) == "x64"
    assert _serves(view, tmp_path / "server.log").strip()


def test_the_best_variant_that_runs_here_serves_and_one_that_dies_is_refused(tmp_path: Path) -> None:
    started = time.monotonic()
    choice = choose(VARIANTS_BIN, tmp_path / "views", find_starter_gguf())  # type: ignore[arg-type]
    took = time.monotonic() - started
    print(f"\nCPU variant here: {choice.describe()} (checked in {took:.1f} s)")
    assert choice.variant in variants_in(VARIANTS_BIN) and not choice.forced
    # ggml's own choice (CPUID only) comes first; every refusal says what killed it.
    first = loaded_variant(VARIANTS_BIN)
    assert first == choice.variant or first in choice.refused
    assert all("signal" in why or "exit" in why for why in choice.refused.values())
    if first == "sapphirerapids" and first in choice.refused:  # this VM: CPUID says AMX, tileloadd is SIGILL
        assert "signal 4" in choice.refused[first]
    assert _serves(Path(choice.bin_dir), tmp_path / "server.log").strip()
    # Kept: the same answer again without running anything.
    again_started = time.monotonic()
    assert choose(VARIANTS_BIN, tmp_path / "views", find_starter_gguf()) == choice  # type: ignore[arg-type]
    assert time.monotonic() - again_started < 0.5


def test_detect_shows_the_variant_and_a_second_build_takes_seconds(tmp_path: Path) -> None:
    env = {**os.environ, "SLM_STATE_DIR": str(tmp_path / "state"), "SLM_LLAMA_BIN_DIR": str(VARIANTS_BIN),
           "SLM_LLAMA_CPU_VARIANT": "haswell"}
    out = subprocess.run([sys.executable, "-m", "appliance", "detect", "--json"], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    shown = json.loads(out.stdout)["llama_cpp_cpu"]
    assert shown["variant"] == "haswell" and "forced" in shown["summary"], shown
    text = subprocess.run([sys.executable, "-m", "appliance", "detect"], env=env, capture_output=True, text=True,
                          timeout=300, check=True).stdout
    assert "llama.cpp CPU: haswell (forced)" in text, text
    started = time.monotonic()
    built = subprocess.run([str(REPO / "scripts/build-llama-server.sh")], capture_output=True, text=True,
                           env={**os.environ, "SLM_LLAMA_CPU_VARIANTS": "1"}, timeout=120, check=True)
    assert "already built" in built.stdout and time.monotonic() - started < 10, built.stdout
