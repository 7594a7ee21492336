"""Fine-tune benchmark: our `finetune` job against a plain PEFT training loop, on the starter model.

Both train the same HF conversion of the starter (the registry's hf-base copy) on the same dataset version,
LoRA r=16 on all linear projections, batch 4, fp32, the same number of steps, at the same niceness, in
interleaved rounds. The job's figure is the worker's own seconds per step (every step, checkpoints and
progress events included; model load and evaluation excluded); the plain loop times its steps the same way.
Prints:
  - seconds per step, job ÷ plain loop (target ≤ 1.10)
  - tokens/s of both (padded batch tokens, counted the same way)
Usage: python bench/finetune.py [--rounds 2] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from appliance.testing.daemon import DaemonProcess
from appliance.testing.shopfloor import write_dataset

MODEL = "smollm2-135m-instruct"
NICENESS = 15  # what the job runner gives workers


def plain_loop(base_dir: str, train_file: str, steps: int, batch: int) -> dict[str, float]:
    """The reference: the shortest honest PEFT loop (whole-sequence loss, sequential batches)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    rows = [json.loads(line)["messages"] for line in Path(train_file).read_text().splitlines() if line]
    encoded = [list(tokenizer.apply_chat_template(r, tokenize=True)["input_ids"]) for r in rows]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    tokens, started = 0, time.monotonic()
    for step in range(steps):
        picked = [encoded[(step * batch + i) % len(encoded)] for i in range(batch)]
        width = max(len(p) for p in picked)
        ids = torch.tensor([p + [pad] * (width - len(p)) for p in picked])
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in picked])
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
    elapsed = time.monotonic() - started
    return {"seconds_per_step": elapsed / steps, "tokens_per_s": tokens / elapsed}


def run_plain(base_dir: str, train_file: str, steps: int) -> dict[str, float]:
    out = subprocess.run(["nice", "-n", str(NICENESS), sys.executable, __file__, "--plain-loop", base_dir,
                          train_file, str(steps)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_job(daemon: DaemonProcess, steps: int) -> dict[str, Any]:
    headers = daemon.admin_headers()
    body = {"type": "finetune", "params": {"base_model": MODEL, "dataset": "bench",
                                           "overrides": {"max_steps": steps, "checkpoint_every": 10}}}
    job = httpx.post(f"{daemon.url}/api/v1/jobs", headers=headers, json=body, timeout=30).json()
    while job["state"] in ("queued", "running"):
        time.sleep(1)
        job = httpx.get(f"{daemon.url}/api/v1/jobs/{job['id']}", headers=headers).json()
    if job["state"] != "succeeded":
        raise SystemExit(f"finetune job {job['state']}: {job['error']}")
    return dict(job["result"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        daemon = DaemonProcess(Path(tmp) / "state").start()
        try:
            headers = daemon.admin_headers()
            data = write_dataset(daemon.state_dir / "imports" / "bench.jsonl")
            job = httpx.post(f"{daemon.url}/api/v1/datasets", headers=headers,
                             json={"path": str(data), "name": "bench", "base_model": MODEL}).json()
            while job["state"] in ("queued", "running"):
                time.sleep(0.5)
                job = httpx.get(f"{daemon.url}/api/v1/jobs/{job['id']}", headers=headers).json()
            train_file = Path(httpx.get(f"{daemon.url}/api/v1/datasets/bench", headers=headers).json()["path"])
            warm = run_job(daemon, 1)  # converts the GGUF base once and caches the base's golden answers
            base = httpx.get(f"{daemon.url}/api/v1/models/{warm['adapter']}", headers=headers).json()
            base_dir = base["lineage"][0]["path"]
            jobs, plains = [], []
            for _ in range(args.rounds):
                plains.append(run_plain(base_dir, str(train_file / "train.jsonl"), args.steps))
                jobs.append(run_job(daemon, args.steps))
        finally:
            daemon.stop()
    job_sps = statistics.median(j["seconds_per_step"] for j in jobs)
    plain_sps = statistics.median(p["seconds_per_step"] for p in plains)
    job_tps = statistics.median(j["tokens_per_s"] for j in jobs)
    plain_tps = statistics.median(p["tokens_per_s"] for p in plains)
    figures = {"job_seconds_per_step": job_sps, "plain_seconds_per_step": plain_sps, "ratio": job_sps / plain_sps,
               "job_tokens_per_s": job_tps, "plain_tokens_per_s": plain_tps, "rounds": args.rounds,
               "steps": args.steps, "per_round": {"job": [j["seconds_per_step"] for j in jobs],
                                                  "plain": [p["seconds_per_step"] for p in plains]}}
    print(f"starter model {MODEL}, LoRA r=16 all linear, batch 4, fp32, {args.steps} steps, "
          f"{args.rounds} interleaved rounds (medians)")
    print(f"{'':24}{'plain PEFT':>12}{'our job':>12}{'ratio':>9}   target")
    print(f"{'seconds per step':24}{plain_sps:>12.3f}{job_sps:>12.3f}{job_sps / plain_sps:>9.3f}   ≤ 1.10")
    print(f"{'tokens/s':24}{plain_tps:>12.1f}{job_tps:>12.1f}{job_tps / plain_tps:>9.3f}")
    print(f"per round s/step: plain {[round(p, 3) for p in figures['per_round']['plain']]}, "
          f"job {[round(j, 3) for j in figures['per_round']['job']]}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--plain-loop":
        print(json.dumps(plain_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]), 4)))
        raise SystemExit(0)
    raise SystemExit(main())
