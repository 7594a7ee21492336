"""The training core: one run of a TRL trainer for a job, resumable and cancellable, the same code in the
worker's own process and in each rank of a data-parallel run.

  seeds and threads → the model (the profile's method) → held-out figures before (rank 0; kept in the job
  folder so a resumed run reports the first run's) → the trainer with our callbacks → train, from the newest
  committed checkpoint when there is one → held-out figures after (rank 0) → the adapter (or full model) saved.

Data order is the trainer's seeded sampler (seed = the job's): a resumed run skips the batches it has done and
sees the same examples as a run that was never stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.state.durable import write_atomic
from appliance.training import callbacks, checkpoints
from appliance.training.build import Trainable, build_base
from appliance.training.measures import Figures, measure
from appliance.training.request import TrainRequest, read_records

ProgressFn = Callable[..., None]


@dataclass
class TrainResult:
    steps: int
    before: Figures
    after: Figures
    losses: list[float]
    resumed_from: int = 0
    tokens_per_s: float = 0.0
    seconds_per_step: float = 0.0
    # The trained model and its tokenizer, in memory for the golden set (not serialized; None from a rank run).
    model: Any = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)

    @property
    def train_loss_last(self) -> float | None:
        return self.losses[-1] if self.losses else None

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "before": self.before, "after": self.after, "losses": self.losses,
                "resumed_from": self.resumed_from, "tokens_per_s": self.tokens_per_s,
                "seconds_per_step": self.seconds_per_step}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainResult:
        return cls(**data)


def _rank0() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _measured_before(request: TrainRequest, built: Trainable, eval_records: list[dict[str, Any]],
                     resumed: bool, progress: ProgressFn) -> Figures:
    """Rank 0 measures the untrained model once; a resumed run reads what the first run measured."""
    if resumed and request.before_file.is_file():
        figures: Figures = json.loads(request.before_file.read_text())
        return figures
    figures = {}
    if _rank0():
        progress(phase="evaluating", message="held-out figures before training", step=0, force=True)
        figures = measure(request.method, built.model, built.tokenizer, eval_records,
                          request.settings.max_seq_length, request.settings.batch_size)
        write_atomic(request.before_file, json.dumps(figures).encode())
    return figures


def _losses(trainer: Any) -> list[float]:
    return [round(float(h["loss"]), 5) for h in trainer.state.log_history if "loss" in h and "step" in h]


def _after(request: TrainRequest, trainer: Any, tokenizer: Any, eval_records: list[dict[str, Any]],
           progress: ProgressFn) -> Figures:
    if request.settings.layout == "fsdp":  # rank 0 alone holds a shard: measuring it would need every rank
        return {}
    progress(phase="evaluating", message="held-out figures after training", step=trainer.state.global_step,
             force=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    return measure(request.method, model, tokenizer, eval_records, request.settings.max_seq_length,
                   request.settings.batch_size)


def train(request: TrainRequest, progress: ProgressFn, should_stop: Callable[[], bool]) -> TrainResult:
    """Train as `request` says; resumes from the job's newest committed checkpoint when there is one.

    Raises:
        InterruptedError: `should_stop()` turned true; a checkpoint of the last finished step was committed.
        ValueError: no record of the train split can be trained on.
        MethodUnavailable: the method needs hardware or packages this box lacks.
    """
    import torch
    from transformers import set_seed

    settings = request.settings
    set_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    records, eval_records = read_records(request.train_file), read_records(request.eval_file)
    resume = checkpoints.latest(request.job)
    checkpoints.discard_staging(request.job)
    built = build_base(Path(request.base_dir), settings)
    before = _measured_before(request, built, eval_records, resume is not None, progress)
    stop = callbacks.Stop(should_stop)
    shown = callbacks.Progress(progress, len(records), settings.sequences_per_step * settings.processes)
    from appliance.training.trainers import make_trainer

    trainer = make_trainer(request, built, records, [shown, stop, callbacks.Commit(request.job)])
    _barrier()  # rank 0 measured before the others start the first collective
    resumed_from = checkpoints.step_of(resume) if resume is not None else 0
    if resume is not None:
        progress(phase="resumed", step=resumed_from, force=True, message=f"resumed from step {resumed_from}")
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    if stop.stopped_at is not None:
        raise InterruptedError(f"stopped at step {stop.stopped_at}")
    after = _after(request, trainer, built.tokenizer, eval_records, progress) if _rank0() else {}
    if settings.layout == "fsdp":  # checkpoints stay sharded; the model we register is saved whole
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(request.adapter_dir))
    if _rank0():
        built.tokenizer.save_pretrained(str(request.adapter_dir))
    steps_run = max(trainer.state.global_step - resumed_from, 1)
    seconds = shown.seconds or 1e-9
    result = TrainResult(steps=trainer.state.global_step, before=before, after=after, losses=_losses(trainer),
                         resumed_from=resumed_from, tokens_per_s=shown.tokens / seconds,
                         seconds_per_step=seconds / steps_run, model=trainer.model, tokenizer=built.tokenizer)
    if _rank0():
        write_atomic(request.result_file, json.dumps(result.to_json()).encode())
    _barrier()
    return result
