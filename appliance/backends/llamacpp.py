"""llama.cpp's native `llama-server`: continuous batching, parallel slots, /health, /metrics."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
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
from appliance.backends.cpu_variants import NoVariantRuns, VariantChoice, choose, variants_in
from appliance.plan.serving import SlotKvMemory
from appliance.profiles.schema import ServingSettings
from appliance.starter import find_starter_gguf  # a variant's check runs a prompt through the starter

if TYPE_CHECKING:
    from appliance.config import ApplianceConfig

LLAMA_CPP_VERSION = "0.3.36"  # the llama-cpp-python release whose vendored llama.cpp we build
DEFAULT_BIN_DIR = BUILD_CACHE / f"llama.cpp-{LLAMA_CPP_VERSION}" / "bin"
# The CUDA build scripts/build-llama-server.sh makes on a box with a GPU and the toolkit; preferred when present.
CUDA_BIN_DIR = BUILD_CACHE / f"llama.cpp-{LLAMA_CPP_VERSION}-cuda" / "bin"
SYSTEM_BIN_DIR = Path("/usr/lib/slm-appliance/bin")
log = logging.getLogger(__name__)


def find_llama_tool(tool: str, configured: Path | None = None) -> Path:
    """Locate `llama-server` / `llama-quantize`: configured dir, $SLM_LLAMA_BIN_DIR, build cache, system, PATH."""
    candidates = [configured, Path(os.environ["SLM_LLAMA_BIN_DIR"]) if os.environ.get("SLM_LLAMA_BIN_DIR") else None,
                  CUDA_BIN_DIR, DEFAULT_BIN_DIR, SYSTEM_BIN_DIR]
    for directory in candidates:
        if directory is not None and (directory / tool).is_file() and os.access(directory / tool, os.X_OK):
            return directory / tool
    found = shutil.which(tool)
    if found:
        return Path(found)
    raise BackendUnavailable(f"{tool} not found; build it with `make llama` (scripts/build-llama-server.sh)")


def _model(spec: LaunchSpec) -> list[str]:
    return ["--model", str(spec.model_path), "--alias", spec.deployment]


def _network(spec: LaunchSpec) -> list[str]:
    hosts = spec.host if spec.unix_socket is None else f"{spec.host},{spec.unix_socket}"
    return ["--host", hosts, "--port", str(spec.port)]


def _batching(spec: LaunchSpec) -> list[str]:
    # -c is the total KV size shared by the slots: each slot gets context_length tokens.
    return ["--ctx-size", str(spec.context_length * spec.parallel_slots), "--parallel", str(spec.parallel_slots),
            "--cont-batching"]


def _compute(spec: LaunchSpec) -> list[str]:
    threads = spec.threads or (os.cpu_count() or 1)
    args = ["--threads", str(threads), "--n-gpu-layers", "all" if spec.gpu_layers < 0 else str(spec.gpu_layers)]
    if spec.gpu_layers == 0:
        # Threads that spin-wait for work starve any other process on the cores. --poll is read by ggml's own
        # thread pool only: a build on OpenMP (ours links libgomp) waits as libgomp says, so this matters for a
        # build without OpenMP (docs/backends.md; the stalls beside a busy live backend, docs/deploy.md).
        args += ["--poll", "0"]
    return args


def _service(spec: LaunchSpec) -> list[str]:
    # No web UI on an appliance; metrics for our scraper; slots for the TUI (all behind the key). Every open
    # connection (keep-alive ones too) holds an HTTP thread: room for the slots' streams, the gateway's idle
    # pool and health checks.
    return ["--metrics", "--no-webui", "--slots", "--threads-http", str(2 * spec.parallel_slots + 8)]


def _embeddings(spec: LaunchSpec) -> list[str]:
    # Mean pooling works for any decoder model; each input is embedded in one micro-batch, so it may be as
    # long as a slot's context.
    if not spec.embeddings:
        return []
    return ["--embeddings", "--pooling", "mean", "--ubatch-size", str(spec.context_length)]


def _adapters(spec: LaunchSpec) -> list[str]:
    if not spec.adapters:
        return []
    args = ["--lora-init-without-apply"]
    for _name, path in spec.adapters:
        args += ["--lora", str(path)]
    return args


BUILDERS: tuple[Builder, ...] = (
    ("model", _model), ("network", _network), ("batching", _batching), ("compute", _compute),
    ("service", _service), ("adapters", _adapters), ("embeddings", _embeddings),
)
KEY_VARIABLE = "LLAMA_API_KEY"  # llama-server reads --api-key from it

# Tuning an operator may add through a deployment's extra_args: sampling defaults, KV cache, batching, GPU split,
# chat template. Not: --host/--port/--model/--alias, --api-key*, --log-file, --path, --slot-save-path, --ssl-*,
# --lora (files), --webui, which would rebind the backend, drop its key or read and write files.
TUNABLE_FLAGS = frozenset({
    "--flash-attn", "-fa", "--cache-type-k", "-ctk", "--cache-type-v", "-ctv", "--batch-size", "-b",
    "--ubatch-size", "-ub", "--threads-batch", "-tb", "--no-mmap", "--mlock", "--numa", "--defrag-thold",
    "--cache-reuse", "--keep", "--seed", "-s", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
    "--repeat-last-n", "--presence-penalty", "--frequency-penalty", "--n-predict", "-n", "--rope-scaling",
    "--rope-scale", "--rope-freq-base", "--rope-freq-scale", "--yarn-orig-ctx", "--split-mode", "-sm",
    "--tensor-split", "-ts", "--main-gpu", "-mg", "--no-kv-offload", "--swa-full", "--kv-unified",
    "--no-context-shift", "--context-shift", "--jinja", "--no-jinja", "--chat-template", "--reasoning-format",
    "--reasoning-budget", "--embeddings", "--pooling", "--prio", "--cpu-mask", "--cpu-range",
})


class LlamaCppBackend:
    name = "llamacpp"
    capabilities = Capabilities(formats=("gguf",), memory=SlotKvMemory(), continuous_batching=True,
                                lora_adapters=True, gpu_required=False, embeddings=True, takes_api_key=True,
                                unix_socket=True, tunable_flags=TUNABLE_FLAGS)

    def __init__(self, bin_dir: Path | None = None, variants_dir: Path | None = None,
                 cpu_variant: str | None = None) -> None:
        self.bin_dir = bin_dir
        self.variants_dir, self.forced_variant = variants_dir, cpu_variant
        self._variant: VariantChoice | None = None

    @classmethod
    def from_config(cls, config: ApplianceConfig, state_dir: Path) -> LlamaCppBackend:
        return cls(config.llama_bin_dir, state_dir / "llama-cpu", config.llama_cpu_variant)

    def cpu_variant(self) -> VariantChoice | None:
        """The CPU variant llama-server runs with here (None: a static build), checked once (cpu_variants.py)."""
        server = find_llama_tool("llama-server", self.bin_dir)
        if self._variant is None and variants_in(server.parent):
            model, views = find_starter_gguf(), self.variants_dir
            if model is None or views is None:
                raise BackendUnavailable("a llama.cpp build of CPU variants needs the starter model and a state "
                                         "dir to check them on this CPU")
            try:
                self._variant = choose(server.parent, views, model, self.forced_variant)
            except NoVariantRuns as exc:
                raise BackendUnavailable(str(exc)) from exc
            chosen = self._variant
            log.info("llama.cpp CPU variant", extra={"variant": chosen.variant, "refused": chosen.refused,
                                                     "bin_dir": chosen.bin_dir})
        return self._variant

    def _server(self, variant: VariantChoice | None) -> Path:
        return Path(variant.bin_dir) / "llama-server" if variant else find_llama_tool("llama-server", self.bin_dir)

    @classmethod
    def profile_problems(cls, serving: ServingSettings) -> list[str]:
        return []

    def serving_defaults(self, profile: ServingSettings, overrides: Mapping[str, object],
                         on_gpu: bool) -> dict[str, object]:
        return {}

    async def renders_tools(self, client: httpx.AsyncClient, spec: LaunchSpec) -> bool | None:
        """When the model's chat template describes tools (its /props says so)."""
        try:
            props = await client.get(f"{self.endpoint(spec)}/props", headers=spec.auth_headers(), timeout=10)
            caps = props.json().get("chat_template_caps") or {}
        except (httpx.HTTPError, ValueError):
            return None
        return bool(caps.get("supports_tools")) and bool(caps.get("supports_tool_calls"))

    def adapter_selector(self, spec: LaunchSpec, adapter: int | None, scale: float) -> dict[str, Any] | None:
        """Fields that pick adapter number `adapter` (None: the base model) for one request. Every adapter's
        scale is sent: llama-server applies loaded adapters to a request that names none (seen with
        --lora-init-without-apply too), and the base name must stay the base model."""
        if not spec.adapters:
            return None
        scales = [{"id": i, "scale": scale if i == adapter else 0.0} for i in range(len(spec.adapters))]
        return {"lora": scales} if adapter is None else {"model": spec.deployment, "lora": scales}

    def build_launch(self, spec: LaunchSpec) -> Launch:
        args, injected = injected_arguments(BUILDERS, spec, self.capabilities.tunable_flags)
        variant = self.cpu_variant()  # its folder is in the command line the deployment's log starts with
        shown = {"cpu_variant": variant.describe()} if variant is not None else {}
        return Launch(argv=[str(self._server(variant)), *args],
                      injected={**injected, **shown, **shown_key(spec, KEY_VARIABLE)},
                      env=api_key_env(spec, KEY_VARIABLE))

    def unavailable(self) -> str | None:
        try:
            self._server(self.cpu_variant())
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def health_url(self, spec: LaunchSpec) -> str:
        return f"http://{spec.host}:{spec.port}/health"

    def endpoint(self, spec: LaunchSpec) -> str:
        return f"http://{spec.host}:{spec.port}"

    async def load_adapter(self, client: httpx.AsyncClient, spec: LaunchSpec, name: str, path: Path) -> str | None:
        return "llama-server loads its adapters at start: a new set starts a new process (blue/green)"

    async def unload_adapter(self, client: httpx.AsyncClient, spec: LaunchSpec, name: str) -> str | None:
        return "llama-server loads its adapters at start: a new set starts a new process (blue/green)"
