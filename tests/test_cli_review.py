"""The review loop's commands as an operator runs them (a real subprocess, text and --json) against one real
daemon serving the starter model: its policy, captured answers with the apps' feedback, the review decisions,
the export into a dataset version, and the capture housekeeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from appliance.client import DaemonClient
from tests.capturetools import CAPTURE_POLICY, captured_chats, inference_key, set_policy
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
PROMPTS = ["Write to ops@example.com that the backup finished.", "What is two plus two?",
           "Name a primary colour.", "Say hello."]
POLICY_TOML = """
[guardrails.limits]
max_answer_tokens = 64

[[guardrails.deny]]
name = "no-secrets"
keywords = ["password", "api key"]

[guardrails.redact]
capture = ["EMAIL", "PHONE"]

[capture]
enabled = true
retention_days = 30
"""


@dataclass
class Loop:
    """The module's daemon with capture on and four answers: [0] with an e-mail address, [1] rated down with a
    correction, [2] rated up with a comment and tags, [3] with no feedback."""

    daemon: DaemonProcess
    ids: list[str]
    app: str  # the token of the key that asked


@pytest.fixture(scope="module")
def loop(serving_daemon: DaemonProcess) -> Iterator[Loop]:
    url, key = serving_daemon.url, serving_daemon.admin_key()
    set_policy(url, key, STARTER, CAPTURE_POLICY)
    app = inference_key(url, key, "review-app")
    ids = captured_chats(url, key, app, STARTER, PROMPTS)
    with DaemonClient(url, app) as client:  # the sync client's feedback call, with the key that asked
        client.feedback(ids[1], rating="down", correction=[{"role": "assistant", "content": "Four."}],
                        comment="wrong sum")
    # As docs/api.md shows it: the official openai client's post to a route it has no method for.
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=app)
    stored = sdk.post("/feedback", body={"response_id": ids[2], "rating": 5, "comment": "good",
                                         "tags": ["colours", "short"]}, cast_to=object)
    assert isinstance(stored, dict) and stored["score"] == 5 and stored["label"] is True
    yield Loop(serving_daemon, ids, app)


def cli(daemon: DaemonProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "SLM_API_KEY"}, "SLM_PORT": str(daemon.port)}
    return subprocess.run([sys.executable, "-m", "appliance", "--state-dir", str(daemon.state_dir), *args],
                          capture_output=True, text=True, timeout=300, env=env, input=stdin)


def ok(daemon: DaemonProcess, *args: str, stdin: str | None = None) -> str:
    result = cli(daemon, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(daemon: DaemonProcess, *args: str) -> Any:
    return json.loads(ok(daemon, *args, "--json"))


def test_policy_show_set_versions(loop: Loop, tmp_path: Path) -> None:
    d = loop.daemon
    shown = ok(d, "deploy", "policy", "show", STARTER)
    assert shown.startswith(f"{STARTER}: policy v") and "capture   on · sample 100%" in shown
    source = tmp_path / "policy.toml"
    source.write_text(POLICY_TOML)
    before = as_json(d, "deploy", "policy", "show", STARTER)["version"]
    ok(d, "deploy", "policy", "set", STARTER, "--file", str(source), "--reason", "deny secrets")
    shown = ok(d, "deploy", "policy", "show", STARTER)
    assert f"policy v{before + 1} by local-admin (deny secrets)" in shown
    assert "deny      no-secrets (both, 2 keywords)" in shown and "answer ≤ 64 tokens" in shown
    assert "redact    input — · output — · capture EMAIL, PHONE" in shown
    assert f"policy         v{before + 1}\n" in ok(d, "deploy", "show", STARTER)
    # What show --json prints goes back in through standard input (JSON this time) as the next version.
    document = ok(d, "deploy", "policy", "show", STARTER, "--json")
    again = json.loads(ok(d, "deploy", "policy", "set", STARTER, "--file", "-", "--json", stdin=document))
    assert again["version"] == before + 2 and again["policy"] == json.loads(document)["policy"]
    versions = as_json(d, "deploy", "policy", "versions", STARTER)
    assert [v["version"] for v in versions][:3] == [before + 2, before + 1, before]
    table = ok(d, "deploy", "policy", "versions", STARTER).splitlines()
    assert table[0].split() == ["VER", "SET", "BY", "CAPTURE", "DENY", "REASON"] and "deny secrets" in table[2]
    unsafe = tmp_path / "unsafe.json"
    unsafe.write_text(json.dumps({"guardrails": {"deny": [{"name": "runaway", "regex": "(a+)+$"}]}}))
    refused = cli(d, "deploy", "policy", "set", STARTER, "--file", str(unsafe))
    assert refused.returncode == 1 and refused.stderr.startswith("slm-appliance: 422: ")
    assert "deny rule 'runaway'" in refused.stderr and "Traceback" not in refused.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[capture\nenabled = true\n")
    bad = cli(d, "deploy", "policy", "set", STARTER, "--file", str(broken))
    assert bad.returncode == 1 and bad.stderr.startswith(f"slm-appliance: {broken}: not TOML: ")
    missing = cli(d, "deploy", "policy", "set", STARTER, "--file", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    assert as_json(d, "deploy", "policy", "show", STARTER)["version"] == before + 2  # refusals made no version


def test_review_queue_filters_and_one_item(loop: Loop) -> None:
    d, ids = loop.daemon, loop.ids
    everything = as_json(d, "review", "list", "--key-name", "review-app")
    assert everything["total"] == 4 and [i["response_id"] for i in everything["items"]] == ids[::-1]
    assert [i["response_id"] for i in as_json(d, "review", "list", "--rated", "down")["items"]] == [ids[1]]
    assert [i["response_id"] for i in as_json(d, "review", "list", "--rated", "up")["items"]] == [ids[2]]
    assert [i["response_id"] for i in as_json(d, "review", "list", "--corrected")["items"]] == [ids[1]]
    sampled = as_json(d, "review", "list", "--sampled", "--key-name", "review-app", "--since", "1h")
    assert {i["response_id"] for i in sampled["items"]} == {ids[0], ids[3]}
    assert as_json(d, "review", "list", "--until", "2000-01-01")["total"] == 0
    table = ok(d, "review", "list", "--key-name", "review-app", "--limit", "2").splitlines()
    assert table[0].split()[:4] == ["ID", "CAPTURED", "DEPLOYMENT", "KEY"] and table[-1] == "2 of 4 items"
    assert ids[3] in table[1] and "down 1/5" not in table[1]
    email = ok(d, "review", "show", ids[0])
    assert "[EMAIL]" in email and "ops@example.com" not in email  # redacted before it was stored
    assert "review: pending" in email and "feedback: none (captured by the sample)" in email
    rated = ok(d, "review", "show", ids[1])
    assert "rating      down 1/5 (key review-app)" in rated and "correction  assistant: Four." in rated
    assert "comment     wrong sum" in rated
    assert "tags        colours, short" in ok(d, "review", "show", ids[2])
    bad = cli(d, "review", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "is not an age (2h, 7d)" in bad.stderr
    missing = cli(d, "review", "show", "chatcmpl-nope")
    assert missing.returncode == 1 and missing.stderr.startswith("slm-appliance: 404: ")


def test_decisions_then_export_into_a_dataset_version(loop: Loop, tmp_path: Path) -> None:
    d, ids = loop.daemon, loop.ids
    assert ok(d, "review", "accept", ids[2]) == f"{ids[2]}: accepted by local-admin\n"
    edited = as_json(d, "review", "edit", ids[1], "--answer", "Two plus two is four.", "--note", "fixed")
    assert edited["review"]["state"] == "edited" and edited["review"]["note"] == "fixed"
    assert edited["review"]["messages"][-1] == {"role": "assistant", "content": "Two plus two is four."}
    assert edited["review"]["messages"][:-1] == edited["item"]["messages"]
    conversation = [{"role": "user", "content": "Write to [EMAIL] that the backup finished."},
                    {"role": "assistant", "content": "Done: I wrote to [EMAIL] that the backup finished."}]
    (tmp_path / "conversation.json").write_text(json.dumps(conversation))
    ok(d, "review", "edit", ids[0], "--file", str(tmp_path / "conversation.json"))
    assert as_json(d, "review", "show", ids[0])["review"]["messages"] == conversation
    rejected = ok(d, "review", "reject", ids[3], "--note", "off topic")
    assert rejected == f"{ids[3]}: rejected by local-admin (off topic)\n"
    assert ok(d, "review", "reopen", ids[3]) == f"{ids[3]}: pending\n"
    ok(d, "review", "reject", ids[3])
    states = {i["response_id"]: i["state"] for i in as_json(d, "review", "list", "--key-name", "review-app")["items"]}
    assert states == {ids[0]: "edited", ids[1]: "edited", ids[2]: "accepted", ids[3]: "rejected"}
    refused = cli(d, "review", "edit", ids[1], "--file", "-", stdin='[{"role": "user"}]')
    assert refused.returncode == 1 and "edited conversation" in refused.stderr  # the daemon's check
    not_json = cli(d, "review", "edit", ids[1], "--file", "-", stdin="nope")
    assert not_json.returncode == 1 and not_json.stderr.startswith("slm-appliance: standard input: not JSON")
    exported = cli(d, "review", "export", "--kind", "sft", "--dataset", "reviewed", "--base-model", STARTER,
                   "--deployment", STARTER, "--eval-fraction", "0")
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert lines[0].startswith("exported 3 sft rows from 3 items → ") and lines[1].startswith("importing as job ")
    assert lines[2].startswith("reviewed v1: 3 train, 0 eval, 0 invalid")
    record = as_json(d, "datasets", "show", "reviewed")
    assert record["report"]["kind"] == "sft" and record["train_count"] == 3
    queued = as_json(d, "review", "export", "--kind", "kto", "--dataset", "reviewed-kto", "--no-wait")
    assert queued["export"]["kind"] == "kto" and queued["job"]["type"] == "dataset-import"
    nothing = cli(d, "review", "export", "--kind", "sft", "--dataset", "none", "--deployment", "no-such")
    assert nothing.returncode == 1 and nothing.stderr.startswith("slm-appliance: 400: ")


def test_captures_stats_sweep_purge(loop: Loop) -> None:
    d = loop.daemon
    url, key = d.url, d.admin_key()
    other = inference_key(url, key, "purge-app")
    [gone] = captured_chats(url, key, other, STARTER, ["Say goodbye."])
    stats = as_json(d, "captures", "stats")
    assert stats["written"] >= 5 and stats["stored"] >= 5 and stats["dropped"] == {}
    text = ok(d, "captures", "stats")
    assert text.startswith(f"stored items  {stats['stored']}\n") and "dropped       none" in text
    assert ok(d, "captures", "sweep") == "nothing to remove: every deployment is within its retention\n"
    assert as_json(d, "captures", "sweep") == {"removed": {}}
    unchosen = cli(d, "captures", "purge")
    assert unchosen.returncode == 1 and "--older-than 0 purges everything" in unchosen.stderr
    assert ok(d, "captures", "purge", "--key-name", "purge-app", "--older-than", "1d") == "deleted 0 captured items\n"
    assert as_json(d, "captures", "purge", "--key-name", "purge-app") == {"deleted": 1}
    assert cli(d, "review", "show", gone).returncode == 1
    assert as_json(d, "review", "list", "--key-name", "review-app")["total"] == 4  # the others stay
