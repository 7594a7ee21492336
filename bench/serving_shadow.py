"""The shadow mode of bench/serving.py: live tokens/s through the gateway with a 100 % shadow (another deployment
of the same model answering every request in the background) against the same deployment without, in
interleaved rounds of one run (the shadow is attached and detached between rounds). Target ≥ 0.90 at 1 and 8
streams on a 2-core box, where both backends share the cores; the shadow's own decode is that contention, so
its tokens/s in the same rounds are printed beside."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from appliance.testing.daemon import DaemonProcess, wait_deployment

CANDIDATE = "shadow-candidate"


def _shadow(daemon: DaemonProcess, model: str, on: bool) -> None:
    url = f"{daemon.url}/api/v1/deployments/{model}/shadow"
    if on:
        httpx.put(url, headers=daemon.admin_headers(), json={"candidate": CANDIDATE, "sample_rate": 1.0},
                  timeout=60).raise_for_status()
    else:
        httpx.delete(url, headers=daemon.admin_headers(), timeout=60)


def _pairs(daemon: DaemonProcess, model: str) -> dict[str, Any]:
    return dict(daemon.get(f"/api/v1/deployments/{model}/trials").json().get("shadow_summary") or {})


def measure_shadow(args: argparse.Namespace, model: str, way: Any, run_round: Any) -> dict[str, Any]:
    """`way` builds the gateway path (serving.Way); `run_round` is serving.run_round."""
    state = Path(tempfile.mkdtemp(prefix="slm-bench-shadow-")) / "state"
    daemon = DaemonProcess(state, env={"SLM_RATE_LIMIT_PER_MINUTE": "100000"}).start()
    rounds: dict[tuple[str, int], list[float]] = {}
    offered = dropped = 0
    try:
        wait_deployment(daemon, model)
        httpx.post(f"{daemon.url}/api/v1/deployments", headers=daemon.admin_headers(), timeout=120,
                   json={"model": model, "name": CANDIDATE}).raise_for_status()
        wait_deployment(daemon, CANDIDATE)
        gateway = way(daemon.url, daemon.admin_headers(), model)
        asyncio.run(run_round(gateway, 1, 2))  # warm-up
        for _ in range(args.rounds):
            for streams, requests in ((1, args.single_requests), (8, 32)):
                for name, on in (("plain", False), ("shadowed", True)):
                    _shadow(daemon, model, on)
                    measured = asyncio.run(run_round(gateway, streams, requests))
                    rounds.setdefault((name, streams), []).append(measured.tokens_per_s)
                    if on:
                        summary = _pairs(daemon, model)
                        offered += int(summary.get("offered", 0))
                        dropped += int(summary.get("dropped", 0))
    finally:
        daemon.stop()

    def tps(name: str, streams: int) -> float:
        return statistics.median(rounds[(name, streams)])

    return {"plain_tps_1": tps("plain", 1), "shadowed_tps_1": tps("shadowed", 1),
            "plain_tps_8": tps("plain", 8), "shadowed_tps_8": tps("shadowed", 8),
            "ratio_1": tps("shadowed", 1) / tps("plain", 1), "ratio_8": tps("shadowed", 8) / tps("plain", 8),
            "offered": offered, "dropped": dropped, "rounds": args.rounds}


def report_shadow(f: dict[str, Any]) -> None:
    print(f"shadow mode: a second deployment of the model answers 100 % of the requests in the background, "
          f"{f['rounds']} interleaved rounds")
    print(f"{'':28}{'plain':>12}{'shadowed':>12}{'ratio':>9}   target")
    for streams in (1, 8):
        label = f"live tokens/s, {streams} stream" + ("s" if streams > 1 else "")
        print(f"{label:28}{f[f'plain_tps_{streams}']:>12.1f}{f[f'shadowed_tps_{streams}']:>12.1f}"
              f"{f[f'ratio_{streams}']:>9.3f}   ≥ 0.90")
    print(f"shadow requests offered {f['offered']}, dropped {f['dropped']} (bounded queue: the candidate answers "
          "one at a time and cannot keep up with 8 live streams on 2 cores)")
