"""The guarded mode of bench/serving.py: tokens/s through the gateway with a policy (input and output PII
redaction, two deny rules, capture of every answer) against the same deployment without a policy, in
interleaved rounds of one run (the policy is set and cleared between rounds; it applies from the next request).
Target: guarded ÷ plain ≥ 0.95 at 1 and 8 streams."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from appliance.testing.daemon import DaemonProcess, wait_deployment

ENTITIES = ["EMAIL", "PHONE", "IBAN", "CREDIT_CARD", "IP"]
POLICY: dict[str, Any] = {
    "guardrails": {
        "deny": [{"name": "no-internal-codenames", "keywords": ["project zebra", "project okapi"]},
                 {"name": "no-credentials", "regex": r"password\s*[:=]\s*\S{4,64}"}],
        "redact": {"input": ENTITIES, "output": ENTITIES, "capture": ENTITIES},
    },
    "capture": {"enabled": True, "sample_rate": 1.0},
}
EMPTY: dict[str, Any] = {}


def _set_policy(daemon: DaemonProcess, model: str, policy: dict[str, Any]) -> None:
    response = httpx.put(f"{daemon.url}/api/v1/deployments/{model}/policy", headers=daemon.admin_headers(),
                         json={"policy": policy, "reason": "bench"}, timeout=60)
    response.raise_for_status()


def measure_guarded(args: argparse.Namespace, model: str, way: Any, run_round: Any) -> dict[str, Any]:
    """`way` builds the gateway path (serving.Way); `run_round` is serving.run_round."""
    state = Path(tempfile.mkdtemp(prefix="slm-bench-guarded-")) / "state"
    daemon = DaemonProcess(state, env={"SLM_RATE_LIMIT_PER_MINUTE": "100000"}).start()
    rounds: dict[tuple[str, int], list[float]] = {}
    try:
        wait_deployment(daemon, model)
        gateway = way(daemon.url, daemon.admin_headers(), model)
        asyncio.run(run_round(gateway, 1, 2))  # warm-up
        for _ in range(args.rounds):
            for streams, requests in ((1, args.single_requests), (8, 32)):
                for name, policy in (("plain", EMPTY), ("guarded", POLICY)):
                    _set_policy(daemon, model, policy)
                    measured = asyncio.run(run_round(gateway, streams, requests))
                    rounds.setdefault((name, streams), []).append(measured.tokens_per_s)
        stats = daemon.get("/api/v1/captures/stats").json()
    finally:
        daemon.stop()

    def tps(name: str, streams: int) -> float:
        return statistics.median(rounds[(name, streams)])

    return {"plain_tps_1": tps("plain", 1), "guarded_tps_1": tps("guarded", 1),
            "plain_tps_8": tps("plain", 8), "guarded_tps_8": tps("guarded", 8),
            "ratio_1": tps("guarded", 1) / tps("plain", 1), "ratio_8": tps("guarded", 8) / tps("plain", 8),
            "captured": stats, "rounds": args.rounds}


def report_guarded(f: dict[str, Any]) -> None:
    print(f"guarded mode: a policy with input+output redaction of {', '.join(ENTITIES)}, two deny rules and "
          f"capture at 100 %, {f['rounds']} interleaved rounds")
    print(f"{'':28}{'plain':>12}{'guarded':>12}{'ratio':>9}   target")
    for streams in (1, 8):
        print(f"{f'tokens/s, {streams} stream' + ('s' if streams > 1 else ''):28}{f[f'plain_tps_{streams}']:>12.1f}"
              f"{f[f'guarded_tps_{streams}']:>12.1f}{f[f'ratio_{streams}']:>9.3f}   ≥ 0.95")
    captured = f["captured"]
    print(f"capture writer: {captured.get('written')} written, dropped {captured.get('dropped')}")
