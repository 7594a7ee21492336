"""Load through the gateway: 1,000 chat requests at 8-way concurrency on loopback, every one answered, in
bounded time; the figures (p50/p99, requests/s) are printed for the issue note (pytest -s)."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest

from appliance.testing.daemon import DaemonProcess, wait_deployment

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
REQUESTS, CONCURRENCY = 1000, 8
PROMPTS = ["What is the capital of France?", "Name a colour.", "Say hello.", "Count to three."]


async def _run(url: str, headers: dict[str, str]) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {"model": STARTER, "max_tokens": 8, "temperature": 0,
                    "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
                if response.status_code != 200 or not response.json()["choices"][0]["message"]["content"]:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return latencies, errors, time.perf_counter() - started


def test_1000_requests_at_8_way_all_answered(tmp_path) -> None:
    daemon = DaemonProcess(tmp_path / "state", env={"SLM_RATE_LIMIT_PER_MINUTE": "100000"}).start()
    try:
        wait_deployment(daemon, STARTER)
        latencies, errors, wall = asyncio.run(_run(daemon.url, daemon.admin_headers()))
        quantiles = statistics.quantiles(latencies, n=100)
        print(f"\nload: {REQUESTS} requests at {CONCURRENCY}-way in {wall:.1f} s ({REQUESTS / wall:.1f} req/s), "
              f"p50 {quantiles[49]:.3f} s, p99 {quantiles[98]:.3f} s, errors {len(errors)}")
        assert errors == [], errors[:5]
        assert len(latencies) == REQUESTS
        assert wall < 900, wall  # bounded: a stall or a leak of slots shows up as a blown budget
        health = daemon.get("/healthz")
        assert health.status_code == 200
    finally:
        assert daemon.stop() == 0
