"""The shadow mode of bench/serving.py: live tokens/s through the gateway with a 100 % shadow (another deployment
of the same model answering every request in the background) against the same deployment without, in
interleaved rounds of one run (the shadow is attached and detached between rounds). Target ≥ 0.90 at 1 and 8
streams on a 2-core box, where both backends share the cores. By default the shadow gives way to live traffic
(trials/yielding.py: the candidate is asked only at quiet moments), so the pairs it made and the requests it
withdrew are printed beside; `--shadow-contend` runs the daemon with `shadow_gives_way` off, which measures
what the core contention itself costs."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
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
    env = {"SLM_RATE_LIMIT_PER_MINUTE": "100000", "SLM_SHADOW_GIVES_WAY": "false" if args.shadow_contend else "true"}
    daemon = DaemonProcess(state, env=env).start()
    rounds: dict[tuple[str, int], list[float]] = {}
    counts = dict.fromkeys(("offered", "dropped", "withdrawn", "pairs"), 0)
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
                        time.sleep(args.shadow_settle_s)  # a quiet moment: the shadow answers what it holds
                        summary = _pairs(daemon, model)
                        for name_ in counts:
                            counts[name_] += int(summary.get(name_, 0))
    finally:
        daemon.stop()

    def tps(name: str, streams: int) -> float:
        return statistics.median(rounds[(name, streams)])

    return {"plain_tps_1": tps("plain", 1), "shadowed_tps_1": tps("shadowed", 1),
            "plain_tps_8": tps("plain", 8), "shadowed_tps_8": tps("shadowed", 8),
            "ratio_1": tps("shadowed", 1) / tps("plain", 1), "ratio_8": tps("shadowed", 8) / tps("plain", 8),
            **counts, "rounds": args.rounds, "gives_way": not args.shadow_contend}


def report_shadow(f: dict[str, Any]) -> None:
    how = "gives way to live traffic" if f["gives_way"] else "competes for the cores (shadow_gives_way off)"
    print(f"shadow mode: a second deployment of the model answers 100 % of the requests in the background and "
          f"{how}, {f['rounds']} interleaved rounds")
    print(f"{'':28}{'plain':>12}{'shadowed':>12}{'ratio':>9}   target")
    for streams in (1, 8):
        label = f"live tokens/s, {streams} stream" + ("s" if streams > 1 else "")
        print(f"{label:28}{f[f'plain_tps_{streams}']:>12.1f}{f[f'shadowed_tps_{streams}']:>12.1f}"
              f"{f[f'ratio_{streams}']:>9.3f}   ≥ 0.90")
    print(f"shadow requests offered {f['offered']}, compared {f['pairs']}, withdrawn for live traffic "
          f"{f['withdrawn']}, dropped {f['dropped']} (bounded queue of 64: under constant load the candidate "
          "cannot keep up)")
