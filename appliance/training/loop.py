"""The training loop (transformers; PEFT LoRA or full weights), resumable from checkpoints.

Data order is a seeded permutation per epoch, so the example behind any step is known from the step number
alone: a checkpoint needs only the step, the adapter, the optimizer, the scheduler and the RNG states.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from appliance.state.durable import durable_rename, fsync_file
from appliance.training.build import Trainable, build_trainable
from appliance.training.encode import Example, collate, encode, pad_id
from appliance.training.settings import ResolvedTraining

ProgressFn = Callable[..., None]
Conversations = list[list[dict[str, str]]]


@dataclass
class TrainResult:
    steps: int
    eval_loss_before: float | None
    eval_loss_after: float | None
    train_loss_last: float | None
    tokens_per_s: float
    seconds_per_step: float
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    # The trained PEFT model and its tokenizer, still in memory for the golden set (not serialized).
    model: Any = None
    tokenizer: Any = None


def _order(n: int, seed: int, epoch: int) -> list[int]:
    indices = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(indices)
    return indices


def _batch_at(examples: list[Example], settings: ResolvedTraining, step: int, micro: int) -> list[Example]:
    n = len(examples)
    first = (step * settings.gradient_accumulation + micro) * settings.batch_size
    picked = []
    for position in range(first, first + settings.batch_size):
        epoch, index = divmod(position, n)
        picked.append(examples[_order(n, settings.seed, epoch)[index]])
    return picked


def _neftune(model: Any, alpha: float) -> None:
    # NEFTune (Jain et al. 2023): uniform noise on input embeddings while training, scaled by alpha/sqrt(L·d).
    embeddings = model.get_input_embeddings()

    def hook(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return output
        scale = alpha / math.sqrt(output.shape[1] * output.shape[2])
        return output + torch.zeros_like(output).uniform_(-scale, scale)

    embeddings.register_forward_hook(hook)


@torch.no_grad()
def evaluate(model: Any, examples: list[Example], batch_size: int, pad: int) -> float | None:
    if not examples:
        return None
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(model.device) for k, v in collate(examples[start:start + batch_size], pad).items()}
        out = model(**batch)
        tokens = int((batch["labels"][:, 1:] != -100).sum())
        total += float(out.loss) * tokens
        count += tokens
    model.train()
    return total / max(count, 1)


def perplexity(loss: float | None) -> float | None:
    """exp(mean token loss), capped so a diverged run reports a huge number rather than overflowing."""
    return None if loss is None else round(math.exp(min(loss, 50.0)), 4)


def _encoded(tokenizer: Any, conversations: Conversations, max_len: int) -> list[Example]:
    return [e for e in (encode(tokenizer, c, max_len) for c in conversations) if e is not None]


@dataclass
class _Run:
    """A run between its steps: the model and its data, the optimizer, and where it stands."""

    built: Trainable
    settings: ResolvedTraining
    examples: list[Example]
    eval_examples: list[Example]
    pad: int
    optimizer: Any
    scheduler: Any
    total: int
    step: int = 0
    losses: list[float] = field(default_factory=list)
    eval_before: float | None = None
    resumed_from: int = 0

    def weights(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        model = self.built.model
        state: dict[str, Any] = get_peft_model_state_dict(model) if self.built.is_peft else model.state_dict()
        return state

    def save(self, checkpoint: Path) -> None:
        # Tensors and plain containers only, so that _restore can load it with weights_only=True.
        state = {"step": self.step, "adapter": self.weights(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng_torch": torch.get_rng_state(),
                 "rng_python": random.getstate(), "losses": self.losses, "eval_loss_before": self.eval_before}
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        fsync_file(tmp)
        durable_rename(tmp, checkpoint)  # atomic and durable: a crash leaves the previous checkpoint intact


def _setup(base_dir: Path, train_convs: Conversations, eval_convs: Conversations,
           settings: ResolvedTraining) -> _Run:
    """Seeds, the trainable model, the encoded examples, the optimizer and the warmup-then-linear schedule."""
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    torch.set_num_threads(settings.threads)
    built = build_trainable(base_dir, settings)
    examples = _encoded(built.tokenizer, train_convs, settings.max_seq_length)
    if not examples:
        raise ValueError("no training example has assistant tokens within max_seq_length")
    if settings.gradient_checkpointing:
        built.model.gradient_checkpointing_enable()
        built.model.enable_input_require_grads()
    if settings.neftune_noise_alpha:
        _neftune(built.model, settings.neftune_noise_alpha)
    total = settings.max_steps or max(1, math.ceil(settings.epochs * len(examples) / settings.sequences_per_step))
    trainable = [p for p in built.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    warmup = max(1, int(total * settings.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    return _Run(built, settings, examples, _encoded(built.tokenizer, eval_convs, settings.max_seq_length),
                pad_id(built.tokenizer), optimizer, scheduler, total)


def _restore(run: _Run, checkpoint: Path) -> None:
    """Load a checkpoint's weights, optimizer, scheduler, RNG states, step, losses and eval loss before."""
    from peft import set_peft_model_state_dict

    state = torch.load(checkpoint, weights_only=True)
    if run.built.is_peft:
        set_peft_model_state_dict(run.built.model, state["adapter"])
    else:
        run.built.model.load_state_dict(state["adapter"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    random.setstate(state["rng_python"])
    run.step, run.losses, run.eval_before = int(state["step"]), list(state["losses"]), state["eval_loss_before"]
    run.resumed_from = run.step


def _restore_or_evaluate(run: _Run, checkpoint: Path, progress: ProgressFn) -> None:
    """Continue from the checkpoint when there is one; otherwise measure the held-out loss before training."""
    if checkpoint.exists():
        _restore(run, checkpoint)
        progress(phase="resumed", step=run.step, total=run.total, message=f"resumed from step {run.step}",
                 force=True)
    else:
        progress(phase="evaluating", message="held-out loss before training", step=0, total=run.total, force=True)
        run.eval_before = evaluate(run.built.model, run.eval_examples, run.settings.batch_size, run.pad)


def _one_step(run: _Run) -> tuple[float, int]:
    """One optimizer step over its micro-batches; returns the step's loss and the tokens it saw."""
    settings, model = run.settings, run.built.model
    step_loss, tokens = 0.0, 0
    for micro in range(settings.gradient_accumulation):
        picked = collate(_batch_at(run.examples, settings, run.step, micro), run.pad)
        batch = {k: v.to(run.built.device) for k, v in picked.items()}
        loss = model(**batch).loss / settings.gradient_accumulation
        loss.backward()
        step_loss += loss.item()
        tokens += int(batch["attention_mask"].sum())
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.losses.append(round(step_loss, 5))
    return step_loss, tokens


@dataclass(frozen=True)
class _Timing:
    seconds: float
    steps: int
    tokens: int


def _step_loop(run: _Run, checkpoint: Path, progress: ProgressFn, should_stop: Callable[[], bool]) -> _Timing:
    """Steps until the total, with a checkpoint every `checkpoint_every` steps and at the end.

    Raises:
        InterruptedError: `should_stop()` turned true; a checkpoint of the last finished step was saved.
    """
    run.built.model.train()
    started, tokens_seen, steps_run = time.monotonic(), 0, 0
    while run.step < run.total:
        if should_stop():
            run.save(checkpoint)
            raise InterruptedError(f"stopped at step {run.step}")
        step_loss, tokens = _one_step(run)
        tokens_seen += tokens
        steps_run += 1
        elapsed = time.monotonic() - started
        progress(phase="training", message="", step=run.step, total=run.total,
                 epoch=round(run.step * run.settings.sequences_per_step / len(run.examples), 3), loss=step_loss,
                 learning_rate=run.scheduler.get_last_lr()[0], tokens_per_s=tokens_seen / elapsed,
                 eta_s=elapsed / steps_run * (run.total - run.step))
        if run.step % run.settings.checkpoint_every == 0 or run.step == run.total:
            run.save(checkpoint)
    return _Timing(time.monotonic() - started, steps_run, tokens_seen)


def _finish(run: _Run, adapter_dir: Path, timing: _Timing, progress: ProgressFn) -> TrainResult:
    """The held-out loss after training; the adapter (or full model) and tokenizer written to `adapter_dir`."""
    model, tokenizer = run.built.model, run.built.tokenizer
    progress(phase="evaluating", message="held-out loss after training", step=run.step, total=run.total, force=True)
    eval_after = evaluate(model, run.eval_examples, run.settings.batch_size, run.pad)
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    return TrainResult(steps=run.step, eval_loss_before=run.eval_before, eval_loss_after=eval_after,
                       train_loss_last=run.losses[-1] if run.losses else None,
                       tokens_per_s=timing.tokens / timing.seconds if timing.seconds else 0.0,
                       seconds_per_step=timing.seconds / max(timing.steps, 1), losses=run.losses,
                       resumed_from=run.resumed_from, model=model, tokenizer=tokenizer)


def train(base_dir: Path, adapter_dir: Path, checkpoint: Path, train_convs: Conversations,
          eval_convs: Conversations, settings: ResolvedTraining, progress: ProgressFn,
          should_stop: Callable[[], bool]) -> TrainResult:
    """Train on `base_dir` with the job's resolved settings; resumes from `checkpoint` when it exists.

    Raises:
        InterruptedError: `should_stop()` turned true; a checkpoint of the last finished step was saved.
        ValueError: no training example has assistant tokens within max_seq_length.
    """
    run = _setup(base_dir, train_convs, eval_convs, settings)
    _restore_or_evaluate(run, checkpoint, progress)
    timing = _step_loop(run, checkpoint, progress, should_stop)
    return _finish(run, adapter_dir, timing, progress)
