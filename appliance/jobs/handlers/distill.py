"""The `distill` job: the teacher answers the prompt set through the gateway (the job's own key, `concurrency`
requests at once), each answer appended to the job's durable log as it arrives (a rerun asks only the rest);
then the answers, as SFT records with their lineage, go through the dataset pipeline as a new version.

Each answer is one request (`n` = 1) with its own seed, derived from the job's seed, the prompt's key and the
answer's number, so a rerun of a prompt asks exactly what the first attempt asked. Answers the teacher cut at
`max_tokens` are left out of the dataset unless `keep_truncated`; a prompt the gateway refuses (too long for
the teacher's context, say) is noted in the log and skipped; a teacher unavailable for minutes fails the job
(resubmitting it, or the daemon's restart, resumes from the log)."""

from __future__ import annotations

import hashlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.datasets.errors import DatasetError
from appliance.datasets.split import canonical_jsonl
from appliance.datasets.store import DatasetRecord, DatasetStore
from appliance.jobs.events import Emitter, JobFailed
from appliance.jobs.handlers.dataset_import import load_tokenizer
from appliance.jobs.handlers.distill_log import AnswerLog
from appliance.jobs.handlers.distill_prompts import Prompt, prompt_set
from appliance.jobs.handlers.gateway import GatewayRefused, WorkerGateway
from appliance.jobs.served import lineage_now
from appliance.registry.registry import Registry, RegistryError
from appliance.state.durable import write_atomic
from appliance.state.store import StateStore


@dataclass(frozen=True)
class Ask:
    prompt: Prompt
    k: int  # the answer's number for its prompt, 0 to n-1
    seed: int

    @property
    def key(self) -> str:
        return f"{self.prompt.key}#{self.k}"


def answer_seed(seed: int, prompt_key: str, k: int) -> int:
    digest = hashlib.blake2b(f"distill:{seed}:{prompt_key}:{k}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def _ask(gateway: WorkerGateway, ask: Ask, params: dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    body = {"model": params["teacher"], "messages": ask.prompt.messages, "temperature": params["temperature"],
            "top_p": params["top_p"], "max_tokens": params["max_tokens"], "seed": ask.seed, "n": 1}
    entry: dict[str, Any] = {"key": ask.key, "prompt": ask.prompt.key, "k": ask.k, "seed": ask.seed,
                             "teacher": teacher}
    try:
        answer = gateway.post("/v1/chat/completions", body)
    except GatewayRefused as exc:
        return {**entry, "refused": exc.message, "status": exc.status}
    choice = answer["choices"][0]
    return {**entry, "answer": (choice.get("message") or {}).get("content") or "",
            "finish_reason": choice.get("finish_reason"),
            "completion_tokens": (answer.get("usage") or {}).get("completion_tokens")}


def ask_all(gateway: WorkerGateway, asks: list[Ask], params: dict[str, Any], teacher: dict[str, Any],
            concurrency: int, log: AnswerLog, emitter: Emitter, total: int) -> None:
    """Ask `asks`, `concurrency` at a time, logging each answer as it arrives. On a cancel or a failure no new
    request starts, the running ones are waited for and logged, then the cancel or failure is raised."""
    pending = iter(asks)
    running: set[Future[dict[str, Any]]] = set()
    failure: BaseException | None = None
    answered = total - len(asks)
    with ThreadPoolExecutor(concurrency, thread_name_prefix="teacher") as pool:
        while True:
            while failure is None and not emitter.cancel_requested and len(running) < concurrency:
                ask = next(pending, None)
                if ask is None:
                    break
                running.add(pool.submit(_ask, gateway, ask, params, teacher))
            if not running:
                break
            finished, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    entry = future.result()
                except Exception as exc:  # JobFailed, JobCancelled, or a bug: stop asking, keep what came
                    failure = failure or exc
                    continue
                log.append(entry)
                answered += 1
                emitter.progress(phase="answering", step=answered, total=total, force=True,
                                 message=f"{answered}/{total} answers from {params['teacher']}")
    log.sync()
    if failure is not None:
        raise failure
    emitter.check_cancelled()


def records(prompts: list[Prompt], log: AnswerLog, params: dict[str, Any], job_id: str) -> tuple[list[Any], int]:
    """The SFT records of the logged answers, in prompt order, with their lineage; and how many were cut at
    max_tokens and left out."""
    rows, truncated = [], 0
    for prompt in prompts:
        for k in range(params["n"]):
            entry = log.done.get(f"{prompt.key}#{k}")
            if entry is None or "answer" not in entry:
                continue
            if entry.get("finish_reason") == "length" and not params.get("keep_truncated"):
                truncated += 1
                continue
            sampling = {name: params[name] for name in ("temperature", "top_p", "max_tokens", "n", "seed")}
            rows.append({"messages": [*prompt.messages, {"role": "assistant", "content": entry["answer"]}],
                         "metadata": {"distillation": {
                             "job": job_id, "teacher": entry["teacher"], "prompt": prompt.source,
                             "sampling": {**sampling, "answer": k, "answer_seed": entry["seed"]},
                             "finish_reason": entry.get("finish_reason"),
                             "completion_tokens": entry.get("completion_tokens")}}})
    return rows, truncated


def _import(spec: dict[str, Any], store: StateStore, datasets: DatasetStore, rows: list[Any]) -> DatasetRecord:
    params, state_dir = spec["params"], Path(spec["state_dir"])
    source = state_dir / "imports" / "distillations" / f"{spec['id']}.jsonl"
    source.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(source, canonical_jsonl(rows))
    tokenizer = None
    if params.get("base_model"):
        tokenizer = load_tokenizer(Registry(store, state_dir / "models", datasets.import_roots), params["base_model"])
    return datasets.import_dataset(source, params["output_dataset"], tokenizer=tokenizer,
                                   max_seq_length=spec["profile_max_seq_length"],
                                   eval_fraction=float(params["eval_fraction"]), seed=int(params["seed"]))


def run_distill(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    params, resolved = spec["params"], spec["params"]["resolved"]
    store = StateStore(Path(spec["state_dir"]) / "state.db").open()
    datasets = DatasetStore(store, Path(spec["state_dir"]) / "datasets", [Path(r) for r in spec["import_roots"]])
    try:
        emitter.progress(phase="prompts", message="reading the prompt set", force=True)
        prompts = prompt_set(datasets, resolved, params["split"])
        if not prompts:
            raise JobFailed("the prompt set is empty (no record or captured request with a user turn)")
        teacher = lineage_now(store, params["teacher"])
        if teacher is None:
            raise JobFailed(f"nothing is served as {params['teacher']!r} any more")
        log = AnswerLog(Path(spec["job_dir"]) / "answers.jsonl").open()
        had = len(log.done)
        asks = [a for p in prompts for k in range(params["n"])
                if (a := Ask(p, k, answer_seed(params["seed"], p.key, k))).key not in log.done]
        total = len(prompts) * params["n"]
        emitter.log(f"{len(prompts)} prompts, {total} answers to ask; {total - len(asks)} already answered")
        try:
            with WorkerGateway(spec, store, stop=lambda: emitter.cancel_requested) as gateway:
                ask_all(gateway, asks, params, teacher, int(resolved["concurrency"]), log, emitter, total)
        finally:
            log.close()
        rows, truncated = records(prompts, log, params, spec["id"])
        if not rows:
            raise JobFailed(f"no usable answer: {truncated} cut at max_tokens {params['max_tokens']} (raise it, "
                            "or set keep_truncated), the rest refused; see the job's answers.jsonl")
        emitter.progress(phase="importing", message=f"{len(rows)} answers into {params['output_dataset']}",
                         force=True)
        record = _import(spec, store, datasets, rows)
    except (DatasetError, RegistryError) as exc:
        raise JobFailed(str(exc)) from exc
    finally:
        store.close()
    refused = sum(1 for e in log.done.values() if "refused" in e)
    emitter.progress(phase="done", step=total, total=total, message=f"{record.name} v{record.version}", force=True)
    return {"dataset": record.name, "version": record.version, "id": record.id, "prompts": len(prompts),
            "answers": total - refused, "answered_before": had, "refused": refused, "truncated": truncated,
            "records": len(rows), "train": record.train_count, "eval": record.eval_count,
            "invalid": record.records_invalid, "duplicates_removed": record.duplicates_removed, "teacher": teacher}
