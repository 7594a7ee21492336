"""What the job adds to a TRL/transformers trainer, as `TrainerCallback`s: progress events (rank 0 only), a
cancel that every rank agrees on at the same step (a checkpoint, then a stop), and the commit of each saved
checkpoint (`training.checkpoints`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from appliance.training import checkpoints

ProgressFn = Callable[..., None]


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


class Progress(TrainerCallback):  # type: ignore[misc]
    """One `training` progress event per logged step (rank 0): loss, learning rate, epoch, tokens/s and the ETA
    of this run (a resumed run counts from where it resumed). Keeps the run's training seconds and tokens (the
    trainers count the tokens of every rank, padding excluded)."""

    def __init__(self, progress: ProgressFn, examples: int, sequences_per_step: int) -> None:
        self.progress, self.examples, self.sequences_per_step = progress, examples, sequences_per_step
        self.started, self.first_step, self.tokens, self.seconds = time.monotonic(), 0, 0.0, 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started, self.first_step = time.monotonic(), state.global_step

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds = time.monotonic() - self.started

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        step, elapsed = state.global_step, max(time.monotonic() - self.started, 1e-9)
        self.tokens = float(logs.get("num_tokens", self.tokens))
        if not state.is_world_process_zero:
            return
        done = max(step - self.first_step, 1)
        self.progress(phase="training", message="", step=step, total=state.max_steps,
                      epoch=round(step * self.sequences_per_step / max(self.examples, 1), 3),
                      loss=float(logs["loss"]), learning_rate=float(logs.get("learning_rate", 0.0)),
                      tokens_per_s=self.tokens / elapsed if self.tokens else None,
                      eta_s=elapsed / done * max(state.max_steps - step, 0))


class Stop(TrainerCallback):  # type: ignore[misc]
    """Ends training with a checkpoint once `should_stop()` holds on any rank, at the same step on all of them
    (a flag all-reduced after each step: ranks that stopped at different steps would hang the next collective).
    The trainer saves when `should_save` is set by the time its log callbacks return."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop
        self.stopped_at: int | None = None

    def _agreed(self) -> bool:
        wanted = self.should_stop()
        if not _distributed():
            return wanted
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1 if wanted else 0], dtype=torch.int32)
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        # After each step's log (every step: logging_steps = 1), so the step reported last is the one saved.
        if logs and "loss" in logs and state.global_step < state.max_steps and self._agreed():
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step


class Commit(TrainerCallback):  # type: ignore[misc]
    """After the trainer saved a checkpoint (every rank its part), rank 0 commits it."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if _distributed():
            import torch.distributed as dist

            dist.barrier()  # every rank's files (its RNG state) are written
        if state.is_world_process_zero:
            checkpoints.commit(self.job_dir, state.global_step)
