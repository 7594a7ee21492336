"""Trials' commands as an operator runs them (a real subprocess, text and --json) against one real daemon serving
the starter, with a second deployment of the starter as the candidate: a shadow (set, its figures, its worst
pairs redacted, the shadow gate of a switch, clear), a canary (start, both sides and the watch's checks, abort,
promote), every command's --help."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.testing.daemon import DaemonProcess
from tests.test_cli_review import as_json, cli, ok
from tests.trialtools import STARTER, ask, canary_traffic, daemon_with_candidate, wait_pairs

pytestmark = pytest.mark.slow
CANDIDATE = "smol-next"
PROMPTS = ["Write to ops@example.com that the backup finished.", "Name three primary colours.",
           "What do bees make?"]
POLICY = """[guardrails.redact]
capture = ["EMAIL"]

[watch]
window_s = 300
min_requests = 2
max_p95_ratio = 50.0  # the same model on both sides: only a busy box could make one side slower
"""
COMMANDS = [("shadow", "set"), ("shadow", "clear"), ("shadow", "show"), ("shadow", "pairs"), ("canary", "start"),
            ("canary", "show"), ("canary", "promote"), ("canary", "abort")]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from daemon_with_candidate(tmp_path_factory.mktemp("cli-trials"), CANDIDATE)


def test_every_command_has_help_and_json() -> None:
    from appliance.cli.main import _parser

    parser = _parser()
    for group, action in COMMANDS:
        args = parser.parse_args(["deploy", group, action, "x", "--json"]
                                 + (["--candidate", "y"] if action in ("set", "start") else []))
        assert args.json and args.trial_action == action
    switch = parser.parse_args(["deploy", "switch", "x", "m", "--shadow-gate-min-agreement", "0.9",
                                "--shadow-gate-min-pairs", "50"])
    assert (switch.shadow_gate_min_agreement, switch.shadow_gate_min_pairs) == (0.9, 50)
    with pytest.raises(SystemExit) as shown:
        parser.parse_args(["deploy", "canary", "--help"])
    assert shown.value.code == 0


def test_shadow_set_show_pairs_gate_clear(daemon: DaemonProcess, tmp_path: Path) -> None:
    d = daemon
    assert ok(d, "deploy", "shadow", "show", STARTER).startswith(f"{STARTER}: no shadow (slm-appliance deploy shadow")
    (tmp_path / "policy.toml").write_text(POLICY)
    policy = ok(d, "deploy", "policy", "set", STARTER, "--file", str(tmp_path / "policy.toml"))
    assert "watch     window_s 300 · min_requests 2 · max_p95_ratio 50.0" in policy
    own = cli(d, "deploy", "shadow", "set", STARTER, "--candidate", STARTER)
    assert own.returncode == 1 and "its own candidate" in own.stderr
    assert cli(d, "deploy", "shadow", "set", STARTER, "--candidate", "nope").stderr.startswith("slm-appliance: 404: ")
    assert as_json(d, "deploy", "shadow", "set", STARTER, "--candidate", CANDIDATE, "--sample-rate", "0.5") == {
        "candidate": CANDIDATE, "sample_rate": 0.5}
    assert ok(d, "deploy", "shadow", "set", STARTER, "--candidate", CANDIDATE, "--sample-rate", "1") == \
        f"{STARTER}: shadow {CANDIDATE} on 100% of the requests\n"
    ask(d.url, d.admin_key(), STARTER, PROMPTS)
    summary = wait_pairs(d.url, d.admin_key(), STARTER, len(PROMPTS))
    shown = ok(d, "deploy", "shadow", "show", STARTER)
    assert shown.startswith(f"{STARTER}: shadow {CANDIDATE} on 100% of the requests\n  pairs      3 (newest")
    assert f"agreement  {summary['agreement_mean']:.3f} mean" in shown and "refusals   live none" in shown
    histogram = shown.split("agreement histogram\n")[1].splitlines()
    assert len(histogram) == 10 and histogram[0].lstrip().startswith("0.0–0.1")
    assert sum(int(row.split()[-1]) for row in histogram) == 3
    assert as_json(d, "deploy", "shadow", "show", STARTER)["shadow_summary"]["pairs"] == 3
    pairs = as_json(d, "deploy", "shadow", "pairs", STARTER, "--limit", "3")
    assert len(pairs) == 3 and [p["figures"]["agreement"] for p in pairs] == sorted(p["figures"]["agreement"]
                                                                                   for p in pairs)
    text = ok(d, "deploy", "shadow", "pairs", STARTER, "--limit", "3")
    assert len(re.findall(r"^#\d .* · agreement \d\.\d{3}", text, re.M)) == 3 and "  candidate   " in text
    assert "Write to [EMAIL] that the backup finished." in text and "ops@example.com" not in text  # redacted
    blocked = cli(d, "deploy", "switch", STARTER, STARTER, "--shadow-gate-min-pairs", "1000")
    assert blocked.returncode == 1 and blocked.stderr.startswith("slm-appliance: 409: shadow gate: ")
    assert "3 shadow pairs, fewer than 1000" in blocked.stderr
    assert ok(d, "deploy", "shadow", "clear", STARTER) == f"{STARTER}: shadow cleared\n"
    again = cli(d, "deploy", "shadow", "clear", STARTER)
    assert again.returncode == 1 and "has no shadow" in again.stderr
    assert as_json(d, "deploy", "shadow", "show", STARTER)["shadow"] is None
    assert ok(d, "deploy", "shadow", "pairs", STARTER) == f"{STARTER}: no shadow pairs\n"


def test_canary_start_show_abort_then_promote(daemon: DaemonProcess) -> None:
    d = daemon
    assert ok(d, "deploy", "canary", "show", STARTER).startswith(f"{STARTER}: no canary (slm-appliance deploy")
    assert ok(d, "deploy", "canary", "start", STARTER, "--candidate", CANDIDATE, "--weight", "0.5") == \
        f"{STARTER}: canary {CANDIDATE} on 50% of the keys, watched against the live side\n"
    twice = cli(d, "deploy", "canary", "start", STARTER, "--candidate", CANDIDATE)
    assert twice.returncode == 1 and "already has a canary" in twice.stderr
    verdict = canary_traffic(d.url, d.admin_key(), STARTER, requests=2)
    shown = ok(d, "deploy", "canary", "show", STARTER).splitlines()
    assert shown[0].startswith(f"{STARTER}: canary {CANDIDATE} on 50% of the keys, since ")
    assert shown[1].startswith("canary watch over ") and ": no regression" in shown[1]
    assert shown[2].startswith(f"  candidate {CANDIDATE}:") and f" · baseline {STARTER}:" in shown[2]
    assert shown[3].split() == ["CANDIDATE", "BASELINE"] and shown[4].split()[0] == "requests"
    assert int(shown[4].split()[1]) >= verdict["candidate"]["requests"]
    checks = shown[shown.index("  checks") + 1:]
    assert [c[4:21].strip() for c in checks[:4]] == ["error rate", "p95 latency", "guardrail blocks",
                                                      "thumbs down"]
    assert checks[0].endswith(" ok") and "not judged: candidate 0 of 20 rated answers" in checks[3]
    view = as_json(d, "deploy", "canary", "show", STARTER)
    assert view["canary"]["weight"] == 0.5 and view["watching"] and view["watch"]["kind"] == "canary"
    aborted = ok(d, "deploy", "canary", "abort", STARTER, "--reason", "seen enough")
    assert aborted == f"{STARTER}: canary aborted; every key is on the live version\n"
    assert as_json(d, "deploy", "canary", "show", STARTER)["canary"] is None
    line = next(a for a in d.get("/api/v1/audit", params={"limit": 50}).json()
                if a["action"] == "deployment.canary.abort")
    assert line["detail"]["reason"] == "seen enough" and line["detail"]["figures"]["candidate_figures"]["requests"]
    started = as_json(d, "deploy", "canary", "start", STARTER, "--candidate", CANDIDATE)
    assert started["weight"] == 0.05 and started["candidate"] == CANDIDATE
    promoted = ok(d, "deploy", "canary", "promote", STARTER, "--reason", "canary looked fine").splitlines()
    assert promoted[0] == f"{STARTER}: {STARTER} → {STARTER} (switch, blue/green)"
    assert as_json(d, "deploy", "canary", "show", STARTER)["canary"] is None
    history = as_json(d, "deploy", "history", STARTER)
    assert history[0]["action"] == "switch" and history[0]["detail"]["reason"] == "canary looked fine"
    missing = cli(d, "deploy", "canary", "abort", STARTER)
    assert missing.returncode == 1 and "has no canary" in missing.stderr
