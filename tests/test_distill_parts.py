"""The pieces of distillation and of a worker's gateway calls, without a daemon: the job's own key (created with
inference scope, revoked at the end, stale ones revoked), retries while the gateway is busy, refusals, a stop
while waiting; the durable answer log (a torn line cut off); the concurrent asking (bounded, a cancel keeps what
was answered); the records with their lineage; the prompt set (last user turns, each prompt once)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.jobs.events import Emitter, JobCancelled, JobFailed
from appliance.jobs.handlers.distill import Ask, answer_seed, ask_all, records
from appliance.jobs.handlers.distill_log import AnswerLog
from appliance.jobs.handlers.distill_prompts import Prompt, up_to_last_user
from appliance.jobs.handlers.gateway import GatewayRefused, WorkerGateway
from appliance.security.keys import create_key, verify_token
from appliance.state.store import StateStore

SPEC = {"id": "0123456789ab", "attempt": 2, "daemon_url": "http://127.0.0.1:9"}


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.db").open()


def _gateway(store: StateStore, handler: Any, **kw: Any) -> WorkerGateway:
    return WorkerGateway(SPEC, store, transport=httpx.MockTransport(handler), sleep=lambda s: None, **kw)


def test_the_job_key_is_its_own_inference_key_revoked_at_the_end(store: StateStore) -> None:
    stale = create_key(store, "job-ffffffffffff-a1-beef", "inference")
    mine = create_key(store, "job-1", "admin")  # an operator's key that only looks alike stays
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"].removeprefix("Bearer "))
        return httpx.Response(200, json={"ok": True})

    with _gateway(store, handler) as gateway:
        assert gateway.post("/v1/chat/completions", {"model": "m"}) == {"ok": True}
        key = verify_token(store, seen[0])
        assert key is not None and key.scope == "inference" and key.name.startswith("job-0123456789ab-a2-")
    assert verify_token(store, seen[0]) is None and verify_token(store, stale.token) is None
    assert verify_token(store, mine.token) is not None
    actions = [(e["action"], e["detail"].get("reason")) for e in reversed(store.audit_entries())]
    assert actions == [("key.revoke", "stale job key"), ("key.create", None), ("key.revoke", "job ended")]
    assert seen[0] not in json.dumps(store.audit_entries())  # the token is in no audit line


def test_busy_and_restarting_are_retried_client_errors_are_refusals(store: StateStore) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "1"}, json={}),
                    httpx.Response(503, json={"error": {"message": "starting"}}), httpx.Response(200, json={"a": 1}),
                    httpx.Response(400, json={"error": {"message": "prompt too long"}}),
                    httpx.Response(500, json={"error": {"message": "boom"}})])
    slept: list[float] = []
    gateway = WorkerGateway(SPEC, store, transport=httpx.MockTransport(lambda r: next(answers)), sleep=slept.append)
    with gateway:
        assert gateway.post("/v1/chat/completions", {"model": "m"}) == {"a": 1}
        assert slept == [1.0, 2.0]  # Retry-After, then doubling
        with pytest.raises(GatewayRefused, match="400: prompt too long"):
            gateway.post("/v1/chat/completions", {"model": "m"})
        with pytest.raises(JobFailed, match="500 boom"):
            gateway.post("/v1/chat/completions", {"model": "m"})


def test_a_stop_ends_the_waiting_and_no_url_fails_the_job(store: StateStore) -> None:
    with _gateway(store, lambda r: httpx.Response(503, json={}), stop=lambda: True) as gateway, \
            pytest.raises(JobCancelled):
        gateway.post("/v1/embeddings", {"model": "e"})
    with pytest.raises(JobFailed, match="no URL"):
        WorkerGateway({"id": "0123456789ab"}, store)


def test_embed_batches_in_order(store: StateStore) -> None:
    batches: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        batches.append(texts)
        data = [{"index": i, "embedding": [float(len(t)), 1.0]} for i, t in enumerate(texts)]
        return httpx.Response(200, json={"data": list(reversed(data))})

    with _gateway(store, handler) as gateway:
        vectors = gateway.embed("e", ["a", "bb", "ccc", "dddd", "eeeee"], batch=2)
    assert batches == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert [v[0] for v in vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_the_answer_log_keeps_whole_lines_and_cuts_a_torn_one(tmp_path: Path) -> None:
    log = AnswerLog(tmp_path / "answers.jsonl").open()
    log.append({"key": "a#0", "answer": "x"})
    log.append({"key": "b#0", "answer": "y"})
    log.close()
    with (tmp_path / "answers.jsonl").open("ab") as fh:
        fh.write(b'{"key": "c#0", "ans')  # killed mid-write
    again = AnswerLog(tmp_path / "answers.jsonl").open()
    assert list(again.done) == ["a#0", "b#0"]
    again.append({"key": "c#0", "answer": "z"})
    again.close()
    assert [json.loads(line)["key"] for line in (tmp_path / "answers.jsonl").read_text().splitlines()] == [
        "a#0", "b#0", "c#0"]


class FakeTeacher:
    """Answers after a pause, counting how many requests run at once."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.lock = threading.Lock()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        if body["messages"][-1]["content"] == "too long":
            raise GatewayRefused(400, "too long for the context")
        return {"choices": [{"message": {"content": f"answer {body['seed']}"},
                             "finish_reason": "length" if body["max_tokens"] < 5 else "stop"}],
                "usage": {"completion_tokens": 3}}


PARAMS = {"teacher": "t", "temperature": 0.5, "top_p": 0.9, "max_tokens": 16, "n": 2, "seed": 4}


def _asks(count: int, n: int = 2) -> list[Ask]:
    prompts = [Prompt(f"dataset:train:{i}", [{"role": "user", "content": f"q{i}"}], {"source": "dataset"})
               for i in range(count)]
    return [Ask(p, k, answer_seed(4, p.key, k)) for p in prompts for k in range(n)]


def test_answers_are_asked_at_bounded_concurrency_and_logged(tmp_path: Path) -> None:
    teacher, log, events = FakeTeacher(), AnswerLog(tmp_path / "a.jsonl").open(), []
    emitter = Emitter(out=_Sink(events))  # type: ignore[arg-type]
    asks = _asks(6)
    ask_all(teacher, asks, PARAMS, {"deployment": "t"}, 3, log, emitter, 12)  # type: ignore[arg-type]
    assert teacher.most == 3 and len(log.done) == 12
    assert [e["step"] for e in events if e.get("phase") == "answering"] == list(range(1, 13))
    assert log.done["dataset:train:0#1"]["answer"] == f"answer {answer_seed(4, 'dataset:train:0', 1)}"
    assert answer_seed(4, "dataset:train:0", 1) != answer_seed(4, "dataset:train:0", 0)


def test_a_cancel_stops_asking_and_keeps_what_was_answered(tmp_path: Path) -> None:
    teacher, log = FakeTeacher(), AnswerLog(tmp_path / "a.jsonl").open()
    events: list[dict[str, Any]] = []
    sink = _Sink(events, cancel_after=3)
    emitter = sink.emitter = Emitter(out=sink)  # type: ignore[arg-type]
    with pytest.raises(JobCancelled):
        ask_all(teacher, _asks(20), PARAMS, {}, 2, log, emitter, 40)  # type: ignore[arg-type]
    assert 3 <= len(log.done) <= 5  # the ones answered, and those already running when the cancel came
    assert len(AnswerLog(tmp_path / "a.jsonl").open().done) == len(log.done)


def test_records_carry_lineage_and_leave_out_truncated_and_refused(tmp_path: Path) -> None:
    log = AnswerLog(tmp_path / "a.jsonl").open()
    asks = _asks(2)
    log.append({"key": asks[0].key, "answer": "full", "finish_reason": "stop", "seed": asks[0].seed, "teacher": {}})
    log.append({"key": asks[1].key, "answer": "cut", "finish_reason": "length", "seed": asks[1].seed, "teacher": {}})
    log.append({"key": asks[2].key, "refused": "too long", "status": 400})
    prompts = [asks[0].prompt, asks[2].prompt]
    rows, truncated = records(prompts, log, PARAMS, "job1")
    assert truncated == 1 and [r["messages"][-1]["content"] for r in rows] == ["full"]
    lineage = rows[0]["metadata"]["distillation"]
    assert lineage["sampling"] == {"temperature": 0.5, "top_p": 0.9, "max_tokens": 16, "n": 2, "seed": 4,
                                   "answer": 0, "answer_seed": asks[0].seed}
    assert lineage["job"] == "job1" and lineage["prompt"] == {"source": "dataset"}
    kept, _ = records(prompts, log, {**PARAMS, "keep_truncated": True}, "job1")
    assert [r["messages"][-1]["content"] for r in kept] == ["full", "cut"]


def test_a_prompt_is_the_conversation_up_to_its_last_user_turn() -> None:
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
                    {"role": "assistant", "content": "d"}]
    assert up_to_last_user(conversation) == conversation[:4]
    assert up_to_last_user([{"role": "assistant", "content": "hi"}]) is None


class _Sink:
    """An emitter's stdout: keeps the progress events; sets the cancel flag after `cancel_after` answers."""

    def __init__(self, events: list[dict[str, Any]], cancel_after: int | None = None) -> None:
        self.events, self.cancel_after = events, cancel_after
        self.emitter: Emitter | None = None

    def write(self, text: str) -> None:
        event = json.loads(text)
        self.events.append(event)
        if self.cancel_after is not None and event.get("step", 0) >= self.cancel_after and self.emitter:
            self.emitter._cancel = True

    def flush(self) -> None:
        pass


def test_a_served_name_is_a_deployment_or_an_attached_adapter(store: StateStore) -> None:
    from types import SimpleNamespace

    from appliance.errors import BadRequest, Conflict, NotFound
    from appliance.jobs.served import lineage_now, served

    with store.transaction() as conn:
        for model_id, name, fmt in (("m1", "base", "gguf"), ("a1", "shop-lora", "peft"), ("e1", "minilm", "gguf")):
            conn.execute("INSERT INTO models(id, name, format, path, sha256, size_bytes, created_at) "
                         "VALUES(?, ?, ?, '/x', '', 0, 0)", (model_id, name, fmt))
        for name, model_id, params, desired in (("chat", "m1", "{}", "running"), ("idle", "m1", "{}", "stopped"),
                                                ("emb", "e1", '{"embeddings": true, "parallel_slots": 2}', "running")):
            conn.execute("INSERT INTO deployments(name, model_id, backend, params, desired_state, created_at, "
                         "updated_at) VALUES(?, ?, 'llamacpp', ?, ?, 0, 0)", (name, model_id, params, desired))
        conn.execute("INSERT INTO deployment_adapters(name, deployment, model_id, position, attached_at) "
                     "VALUES('shop-assistant', 'chat', 'a1', 0, 0)")
    profile = SimpleNamespace(serving=SimpleNamespace(embeddings=False, parallel_slots=4))
    appliance: Any = SimpleNamespace(store=store, selection=SimpleNamespace(profile=profile))
    adapter = served(appliance, "shop-assistant", "params.teacher", embeddings=False)
    assert (adapter.deployment, adapter.model, adapter.adapter, adapter.parallel_slots) == (
        "chat", "base", "shop-lora", 4)
    assert served(appliance, "emb", "p", embeddings=True).parallel_slots == 2
    assert lineage_now(store, "shop-assistant") == adapter.lineage() and lineage_now(store, "nothing") is None
    for name, error, embeddings in (("nothing", NotFound, False), ("emb", BadRequest, False),
                                    ("chat", BadRequest, True), ("idle", Conflict, False)):
        with pytest.raises(error) as refused:
            served(appliance, name, "params.teacher", embeddings=embeddings)
        assert refused.value.param == "params.teacher"


def test_the_prompt_set_takes_a_pinned_version_and_captured_requests_each_prompt_once(tmp_path: Path) -> None:
    from appliance.capture.models import CapturedItem
    from appliance.capture.rows import INSERT_ITEM, item_params
    from appliance.datasets.store import DatasetStore
    from appliance.jobs.handlers.distill_prompts import prompt_set

    imports = tmp_path / "imports"
    imports.mkdir()
    store = StateStore(tmp_path / "state.db").open()
    datasets = DatasetStore(store, tmp_path / "datasets", [imports])
    rows = [{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q1"},
                          {"role": "assistant", "content": "a1"}]},
            {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}]
    (imports / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    version = datasets.import_dataset(imports / "p.jsonl", "p", eval_fraction=0.0)
    pairs = [{"prompt": "q3", "chosen": "good", "rejected": "bad"}]
    (imports / "pref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    preference = datasets.import_dataset(imports / "pref.jsonl", "pref", eval_fraction=0.0, kind="preference")
    for i, (content, at) in enumerate((("q2", 10.0), ("q4", 20.0), ("q5", 30.0))):
        item = CapturedItem(response_id=f"chatcmpl-{i}", deployment="d" if i else "other", key_id="k", key_name="app",
                            created_at=at, messages=[{"role": "user", "content": content}], answer="x")
        with store.transaction() as conn:
            conn.execute(INSERT_ITEM, item_params(item))
    pinned = {"name": "p", "version": 1, "id": version.id, "kind": "sft"}
    found = prompt_set(datasets, {"dataset": pinned, "capture_filter": {"limit": 1000}}, "both")
    assert [p.key for p in found] == ["dataset:train:0", "dataset:train:1", "capture:chatcmpl-1", "capture:chatcmpl-2"]
    assert found[0].messages == rows[0]["messages"][:2] and found[2].source["deployment"] == "d"  # q2 asked once
    only = prompt_set(datasets, {"capture_filter": {"deployment": "d", "since": 25.0, "limit": 1000}}, "both")
    assert [p.messages[-1]["content"] for p in only] == ["q5"]
    pref = {"name": "pref", "version": 1, "id": preference.id, "kind": "preference"}
    assert [p.messages for p in prompt_set(datasets, {"dataset": pref}, "train")] == [[{"role": "user",
                                                                                         "content": "q3"}]]
    with pytest.raises(JobFailed, match="not the version this job was given"):
        prompt_set(datasets, {"dataset": {**pinned, "id": "0" * 64}}, "both")


def test_a_text_too_long_for_the_embeddings_model_is_embedded_by_its_beginning(store: StateStore) -> None:
    from appliance.jobs.handlers.dataset_import import embed_batch

    sent: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        sent.append(texts)
        if any(len(t) > 100 for t in texts):  # as llama-server says it, through the gateway
            return httpx.Response(500, json={"error": {"message": f"input ({len(texts[0])} tokens) is too large to "
                                                                  "process. increase the physical batch size"}})
        return httpx.Response(200, json={"data": [{"index": i, "embedding": [float(len(t))]}
                                                  for i, t in enumerate(texts)]})

    with _gateway(store, handler) as gateway:
        assert embed_batch(gateway, "e", ["short", "y" * 300]) == [[5.0], [75.0]]
        assert [len(batch) for batch in sent] == [2, 1, 1, 1, 1]  # the batch, then one by one: 300, 150, 75
    with _gateway(store, lambda r: httpx.Response(500, json={"error": {"message": "boom"}})) as gateway, \
            pytest.raises(JobFailed, match="refused the records: .*boom"):
        embed_batch(gateway, "e", ["a"])
