"""The production loop's front half on the starter, through the API and the official `openai` client: requests
carrying an e-mail, a card number, an IBAN and a phone number, streamed and not, under a policy that redacts
them → redacted capture → feedback from the app's key (another key gets 403) → review (accept, edit, reject)
→ a new dataset version of each export kind, with lineage → a fine-tune's pre-flight accepts the SFT one. At
the end no raw value is anywhere under the state directory or in the daemon's log. Then retention, and a
kill -9 of the daemon while it captures."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from appliance.testing.daemon import DaemonProcess, wait_deployment
from appliance.testing.flow import poll_job, wait_job
from tests.tui.review_pilot import review_through_tui

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
EMAIL, CARD, IBAN, PHONE = "jane.doe@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", \
    "+49 30 901820"
RAW = (EMAIL, CARD, IBAN, CARD.replace(" ", ""), IBAN.replace(" ", ""), PHONE)
ENTITIES = ["EMAIL", "PHONE", "IBAN", "CREDIT_CARD", "IP"]
POLICY = {"guardrails": {"deny": [{"name": "project-zebra", "keywords": ["project zebra"]}],
                         "redact": {"input": ENTITIES, "output": ENTITIES, "capture": ENTITIES}},
          "capture": {"enabled": True, "sample_rate": 1.0}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("loop") / "state").start()
    try:
        wait_deployment(proc, STARTER)
        set_policy(proc, POLICY)
    except BaseException:
        proc.stop()
        raise
    yield proc
    proc.stop()


def set_policy(daemon: DaemonProcess, policy: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(f"{daemon.url}/api/v1/deployments/{STARTER}/policy", headers=daemon.admin_headers(),
                         json={"policy": policy, "reason": "test"}, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def new_key(daemon: DaemonProcess, name: str) -> str:
    response = httpx.post(f"{daemon.url}/api/v1/keys", headers=daemon.admin_headers(),
                          json={"name": name, "scope": "inference"})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def captured(daemon: DaemonProcess, count: int, timeout: float = 20, **filters: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listed = daemon.get("/api/v1/captures", params={"limit": 1000, **filters}).json()
        if listed["total"] >= count or time.monotonic() > deadline:
            return list(listed["items"])
        time.sleep(0.2)


def _client(daemon: DaemonProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=key, max_retries=0, timeout=120)


def _ask(client: openai.OpenAI, text: str, stream: bool) -> tuple[str, str]:
    """(response id, answer) as the app saw them."""
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        answer = client.chat.completions.create(model=STARTER, messages=messages, max_tokens=48)
        return answer.id, answer.choices[0].message.content or ""
    chunks = list(client.chat.completions.create(model=STARTER, messages=messages, max_tokens=48, stream=True))
    return chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _feedback(daemon: DaemonProcess, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{daemon.url}/v1/feedback", headers={"Authorization": f"Bearer {key}"}, json=body,
                      timeout=30)


def _export(daemon: DaemonProcess, kind: str, dataset: str) -> dict[str, Any]:
    response = httpx.post(f"{daemon.url}/api/v1/captures/export", headers=daemon.admin_headers(), timeout=60,
                          json={"kind": kind, "dataset": dataset, "eval_fraction": 0.0})
    assert response.status_code == 202, response.text
    started = dict(response.json())
    wait_job(daemon, started["job"]["id"], timeout=300)
    return started


def test_the_whole_path_keeps_pii_out_and_makes_a_dataset(daemon: DaemonProcess) -> None:
    app, other = new_key(daemon, "shopfloor-app"), new_key(daemon, "other-app")
    client = _client(daemon, app)
    asked = [(f"Repeat exactly: my mail is {EMAIL} and my card is {CARD}.", False),
             (f"Repeat exactly: transfer to {IBAN}, call {PHONE}, mail {EMAIL}.", True),
             (f"Write the card number {CARD} back to me.", True)]
    answers = [_ask(client, text, stream) for text, stream in asked]
    for _, text in answers:
        assert not any(raw in text for raw in RAW), text  # output redaction: the app never gets one back
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(client, "What do you know about Project Zebra?", False)
    error = refused.value.response.json()["error"]
    assert error["code"] == "content_policy_violation" and "project-zebra" in error["message"]

    items = captured(daemon, 3)
    assert {i["response_id"] for i in items} == {rid for rid, _ in answers}
    first = daemon.get(f"/api/v1/captures/{answers[0][0]}").json()
    assert "[EMAIL]" in first["item"]["messages"][0]["content"] and "[CREDIT_CARD]" in first["item"]["messages"][0][
        "content"]
    assert first["item"]["key_name"] == "shopfloor-app" and first["item"]["finish_reason"]

    correction = [{"role": "assistant", "content": f"I will not repeat card numbers such as {CARD}."}]
    down = _feedback(daemon, app, {"response_id": answers[0][0], "rating": "down", "correction": correction})
    assert down.status_code == 200 and CARD not in down.text and "[CREDIT_CARD]" in down.text
    assert _feedback(daemon, app, {"response_id": answers[1][0], "rating": "up"}).status_code == 200
    assert _feedback(daemon, other, {"response_id": answers[1][0], "rating": "down"}).status_code == 403
    assert _feedback(daemon, app, {"response_id": "chatcmpl-unknown", "rating": "up"}).status_code == 404

    # The operator reviews in the TUI, with its keys: edit one, accept one, reject one.
    reviewed = review_through_tui(daemon.url, daemon.admin_key(), accept=[answers[1][0]], reject=[answers[2][0]],
                                  edit={answers[0][0]: "I cannot repeat personal data; please use the secure form."})
    assert [reviewed.items[rid]["review"]["state"] for rid, _ in answers] == ["edited", "accepted", "rejected"]

    sft = _export(daemon, "sft", "shopfloor-reviewed")
    assert sft["export"]["items"] == 2 and sft["export"]["rows"] == 2
    version = daemon.get("/api/v1/datasets/shopfloor-reviewed").json()
    assert version["train_count"] == 2 and version["report"]["kind"] == "sft"
    lineage = _lineage(version)
    assert lineage == {answers[0][0], answers[1][0]}
    preference = _export(daemon, "preference", "shopfloor-preference")
    assert preference["export"]["rows"] >= 1
    kto = _export(daemon, "kto", "shopfloor-kto")
    assert kto["export"]["rows"] >= 2

    job = httpx.post(f"{daemon.url}/api/v1/jobs", headers=daemon.admin_headers(), timeout=60, json={
        "type": "finetune", "params": {"base_model": STARTER, "dataset": "shopfloor-reviewed",
                                       "overrides": {"max_steps": 1}}})
    assert job.status_code == 202, job.text  # pre-flight accepted the reviewed version
    httpx.post(f"{daemon.url}/api/v1/jobs/{job.json()['id']}/cancel", headers=daemon.admin_headers(), timeout=60)
    poll_job(daemon, job.json()["id"], timeout=300)
    refused_kind = httpx.post(f"{daemon.url}/api/v1/jobs", headers=daemon.admin_headers(), timeout=60, json={
        "type": "finetune", "params": {"base_model": STARTER, "dataset": "shopfloor-preference"}})
    assert refused_kind.status_code == 400 and "preference" in refused_kind.text

    _assert_no_raw_value(daemon)


def _lineage(version: dict[str, Any]) -> set[str]:
    """The captured items behind a dataset version's records (kept with each record)."""
    rows = [json.loads(line) for line in (Path(version["path"]) / "train.jsonl").read_text().splitlines() if line]
    return {row["metadata"]["capture_id"] for row in rows}


def _assert_no_raw_value(daemon: DaemonProcess) -> None:
    """Every file under the state directory (the database, its WAL, logs, jobs, datasets, exports) and the
    daemon's own output: none holds a raw value."""
    found = []
    for path in daemon.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {raw}" for raw in RAW if raw.encode() in data]
    log = daemon.log()
    found += [f"daemon log: {raw}" for raw in RAW if raw in log]
    assert not found, found


def _metric(daemon: DaemonProcess, name: str, **labels: str) -> float:
    total = 0.0
    for line in daemon.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_guard_model_plumbing_with_the_starter_as_guard(daemon: DaemonProcess) -> None:
    """The starter is a poor judge; what is tested is the path: the verdict is asked of another deployment and
    read, a timeout and an unreachable guard go the way on_error says, each counted."""
    created = httpx.post(f"{daemon.url}/api/v1/deployments", headers=daemon.admin_headers(), timeout=120,
                         json={"model": STARTER, "name": "guard", "params": {"parallel_slots": 1}})
    assert created.status_code == 201, created.text
    wait_deployment(daemon, "guard")
    # Two categories keep the guard's prompt short (its answer must come within the timeout on a busy box).
    guard = {"deployment": "guard", "directions": ["input", "output"], "timeout_s": 60, "on_error": "fail-closed",
             "categories": {"S1": "Violent Crimes.", "S2": "Non-Violent Crimes."}}
    set_policy(daemon, {**POLICY, "guardrails": {**POLICY["guardrails"], "guard": guard}})
    client = _client(daemon, daemon.admin_key())
    try:
        _ask(client, "How do I reset the conveyor belt?", stream=True)  # judged whole, then streamed
    except openai.BadRequestError as exc:
        assert "'guard'" in str(exc)
    asked = sum(_metric(daemon, "slm_guardrail_guard_verdicts_total", deployment=STARTER, verdict=v)
                for v in ("safe", "unsafe", "unknown"))
    assert asked >= 1  # the guard answered and its answer was read (whatever it said)

    set_policy(daemon, {**POLICY, "guardrails": {**POLICY["guardrails"],
                                                 "guard": {**guard, "timeout_s": 0.001, "on_error": "fail-open"}}})
    _ask(client, "How do I reset the conveyor belt?", stream=False)  # let through: fail-open
    assert _metric(daemon, "slm_guardrail_guard_verdicts_total", verdict="timeout", decision="allowed") >= 1

    httpx.post(f"{daemon.url}/api/v1/deployments/guard/stop", headers=daemon.admin_headers(), timeout=60)
    set_policy(daemon, {**POLICY, "guardrails": {**POLICY["guardrails"], "guard": guard}})
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(client, "How do I reset the conveyor belt?", stream=False)
    assert "guard model: error" in str(refused.value)
    assert _metric(daemon, "slm_guardrail_blocks_total", rule="guard", reason="error") >= 1
    set_policy(daemon, POLICY)


def test_retention_sweep_removes_what_is_past_the_limits(daemon: DaemonProcess) -> None:
    set_policy(daemon, {**POLICY, "capture": {"enabled": True, "max_rows": 2}})
    client = _client(daemon, daemon.admin_key())
    ids = [_ask(client, f"Say the number {n}.", stream=False)[0] for n in range(3)]
    deadline = time.monotonic() + 20
    while not set(ids) <= {i["response_id"] for i in captured(daemon, 0)} and time.monotonic() < deadline:
        time.sleep(0.2)  # written by the capture writer (batched, off the request path)
    swept = httpx.post(f"{daemon.url}/api/v1/captures/sweep", headers=daemon.admin_headers(), timeout=60)
    assert swept.status_code == 200, swept.text
    left = [i["response_id"] for i in captured(daemon, 0, deployment=STARTER)]
    assert left == ids[:0:-1]  # the two newest, newest first
    set_policy(daemon, {**POLICY, "capture": {"enabled": True, "retention_days": 1e-5}})  # under a second
    time.sleep(1.2)
    httpx.post(f"{daemon.url}/api/v1/captures/sweep", headers=daemon.admin_headers(), timeout=60)
    assert captured(daemon, 0, deployment=STARTER) == []
    set_policy(daemon, POLICY)


def test_kill_9_while_capturing_loses_no_committed_item(daemon: DaemonProcess) -> None:
    """Last in the module: it kills the module's daemon. Requests keep coming while the daemon dies; every item
    the API had listed before the kill is there, whole, after a restart, and the database is intact."""
    set_policy(daemon, POLICY)
    client = _client(daemon, daemon.admin_key())
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                client.chat.completions.create(model=STARTER, max_tokens=4,
                                               messages=[{"role": "user", "content": f"Mail {EMAIL} please."}])
            except openai.APIError:
                return  # the daemon is gone
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    before = {i["response_id"] for i in captured(daemon, 0)}
    committed = {i["response_id"] for i in captured(daemon, len(before) + 5)}
    assert len(committed) >= len(before) + 5
    daemon.kill9()
    stop.set()
    worker.join(30)
    with sqlite3.connect(daemon.state_dir / "state.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = DaemonProcess(daemon.state_dir).start()
    try:
        wait_deployment(again, STARTER)
        after = {i["response_id"] for i in captured(again, 0)}
        assert committed <= after, committed - after
        for response_id in committed:
            item = again.get(f"/api/v1/captures/{response_id}").json()["item"]
            assert item["messages"] and item["messages"][0]["content"] and item["size_bytes"] > 0
            assert EMAIL not in json.dumps(item)
    finally:
        assert again.stop() == 0, again.log()[-3000:]
