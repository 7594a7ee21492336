"""The appliance's day in one process tree, run by test_zero_egress under `unshare -n` and strace: the daemon
starts and serves the starter, a dataset is imported, a short fine-tune runs, the official client chats under a
policy that redacts and captures, the app gives feedback, the operator accepts the item and exports it into a
new dataset version, a DPO job trains on an imported preference set, the starter as teacher distills a few
prompts into another (its worker calls the gateway), and a file is ingested into a vector store that a
`file_search` answers from. Prints one JSON line with what it saw."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import openai

from appliance.testing.daemon import DaemonProcess
from appliance.testing.flow import finetune, import_dataset, submit, wait_job
from appliance.testing.preference_set import preference_rows, write_rows
from appliance.testing.shopfloor import conversations, write_dataset

STARTER = "smollm2-135m-instruct"


def main(state_dir: Path) -> None:
    # No HF_* variable from here: the daemon must force the offline modes itself.
    # As an operator's box starts: the default embeddings model deployed too.
    daemon = DaemonProcess(state_dir, env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"},
                           embeddings=True).start(timeout=120)
    try:
        dataset = write_dataset(state_dir / "imports" / "shop.jsonl")
        import_dataset(daemon, str(dataset), "shop", STARTER)
        job = finetune(daemon, {"base_model": STARTER, "dataset": "shop",
                                "overrides": {"max_steps": 2, "checkpoint_every": 2}})
        client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0, timeout=120)
        answer = client.chat.completions.create(model=STARTER, max_tokens=16, temperature=0, messages=[
            {"role": "user", "content": "What is the capital of France?"}]).choices[0].message.content
        loop = capture_review_export(daemon, client)
        print(json.dumps({"finetune": job["state"], "answer": answer, **loop, "distill": distill(daemon),
                          "dpo": preference(daemon), **retrieval(daemon, client)}))
    finally:
        daemon.stop()


def capture_review_export(daemon: DaemonProcess, client: openai.OpenAI) -> dict[str, object]:
    """A redacting, capturing policy; one chat carrying an e-mail; feedback; accept; export as a dataset."""
    policy = {"guardrails": {"redact": {"input": ["EMAIL"], "output": ["EMAIL"], "capture": ["EMAIL"]}},
              "capture": {"enabled": True}}
    httpx.put(f"{daemon.url}/api/v1/deployments/{STARTER}/policy", headers=daemon.admin_headers(), timeout=60,
              json={"policy": policy}).raise_for_status()
    asked = client.chat.completions.create(model=STARTER, max_tokens=16, messages=[
        {"role": "user", "content": "Mail the report to ops@example.com please."}])
    deadline = time.monotonic() + 30
    while daemon.get(f"/api/v1/captures/{asked.id}").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    feedback = httpx.post(f"{daemon.url}/v1/feedback", headers=daemon.admin_headers(), timeout=60,
                          json={"response_id": asked.id, "rating": "up"})
    httpx.post(f"{daemon.url}/api/v1/captures/{asked.id}/review", headers=daemon.admin_headers(), timeout=60,
               json={"action": "accept"}).raise_for_status()
    export = httpx.post(f"{daemon.url}/api/v1/captures/export", headers=daemon.admin_headers(), timeout=60,
                        json={"kind": "sft", "dataset": "reviewed", "eval_fraction": 0.0})
    export.raise_for_status()
    job = wait_job(daemon, export.json()["job"]["id"], timeout=300)
    return {"feedback": feedback.status_code, "export_job": job["state"]}


def distill(daemon: DaemonProcess) -> str:
    """The starter answers four shop-floor prompts through the gateway; the answers become a dataset version."""
    prompts = daemon.state_dir / "imports" / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(row) + "\n" for row in conversations(4)))
    import_dataset(daemon, str(prompts), "prompts", STARTER)
    job = wait_job(daemon, submit(daemon, "/api/v1/jobs", {"type": "distill", "params": {
        "teacher": STARTER, "dataset": "prompts", "output_dataset": "distilled", "max_tokens": 16,
        "keep_truncated": True}}), timeout=600)
    return str(job["state"])


def preference(daemon: DaemonProcess) -> str:
    """An imported preference dataset and a two-step DPO job on it: TRL, accelerate and datasets in the worker."""
    pairs = write_rows(daemon.state_dir / "imports" / "pairs.jsonl", preference_rows(12))
    import_job = submit(daemon, "/api/v1/datasets", {"path": str(pairs), "name": "pairs", "base_model": STARTER,
                                                      "kind": "preference", "eval_fraction": 0.25})
    wait_job(daemon, import_job, timeout=300)
    job = wait_job(daemon, submit(daemon, "/api/v1/jobs", {"type": "dpo", "params": {
        "base_model": STARTER, "dataset": "pairs",
        "overrides": {"max_steps": 2, "batch_size": 1, "max_seq_length": 128, "lora_r": 4}}}), timeout=1500)
    return str(job["state"])


def retrieval(daemon: DaemonProcess, client: openai.OpenAI) -> dict[str, object]:
    """A markdown file uploaded, ingested by the job (the embeddings deployment embeds it), then a Responses
    request with file_search over the store: the answer's citations and the store's status."""
    manual = daemon.state_dir / "imports" / "press.md"
    manual.write_text("# Press P-7 maintenance\n\nThe hydraulic oil of press P-7 is changed every 500 operating "
                      "hours. Use ISO VG 46 oil.\n")
    with manual.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="assistants")
    store = client.vector_stores.create(name="manuals", file_ids=[uploaded.id])
    deadline = time.monotonic() + 300
    while store.status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.5)
        store = client.vector_stores.retrieve(store.id)
    answer = client.responses.create(model=STARTER, input="How often is the oil of press P-7 changed?",
                                     max_output_tokens=24,
                                     tools=[{"type": "file_search", "vector_store_ids": [store.id]}])
    cited = [a.file_id for item in answer.output if item.type == "message" for part in item.content
             if part.type == "output_text" for a in part.annotations if a.type == "file_citation"]
    return {"store": store.status, "cited": cited == [uploaded.id] or uploaded.id in cited}


if __name__ == "__main__":
    main(Path(sys.argv[1]))
