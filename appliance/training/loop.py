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

from appliance.profiles.schema import TrainingSettings
from appliance.training.build import build_trainable
from appliance.training.encode import Example, collate, encode, pad_id
from appliance.training.params import TrainOverrides

ProgressFn = Callable[..., None]


@dataclass(frozen=True)
class TrainSettings:
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_seq_length: int = 512
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.05
    seed: int = 0
    checkpoint_every: int = 10
    threads: int = 0
    neftune_noise_alpha: float | None = None
    gradient_checkpointing: bool = False
    method: str = "lora-cpu"
    trainer: str = "peft"

    @classmethod
    def from_job(cls, training: TrainingSettings, overrides: TrainOverrides, threads: int) -> TrainSettings:
        """Profile settings (already carrying the job's overrides) plus the run's own knobs."""
        return cls(
            lora_r=training.lora_r, lora_alpha=training.lora_alpha, lora_dropout=training.lora_dropout,
            target_modules=tuple(training.target_modules), batch_size=training.batch_size,
            gradient_accumulation=training.gradient_accumulation, max_seq_length=training.max_seq_length,
            learning_rate=training.learning_rate, epochs=overrides.epochs, max_steps=overrides.max_steps,
            warmup_ratio=overrides.warmup_ratio, seed=overrides.seed, checkpoint_every=overrides.checkpoint_every,
            threads=threads, neftune_noise_alpha=training.neftune_noise_alpha,
            gradient_checkpointing=training.gradient_checkpointing, method=training.method, trainer=training.trainer,
        )


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


def _batch_at(examples: list[Example], settings: TrainSettings, step: int, micro: int) -> list[Example]:
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


def _restore(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any,
             is_peft: bool) -> tuple[int, list[float], float | None]:
    """Load a checkpoint's weights, optimizer, scheduler and RNG states; returns step, losses, eval loss before."""
    from peft import set_peft_model_state_dict

    state = torch.load(checkpoint, weights_only=False)
    if is_peft:
        set_peft_model_state_dict(model, state["adapter"])
    else:
        model.load_state_dict(state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    random.setstate(state["rng_python"])
    return int(state["step"]), list(state["losses"]), state["eval_loss_before"]


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash leaves the previous checkpoint intact


def train(base_dir: Path, adapter_dir: Path, checkpoint: Path, train_convs: list[list[dict[str, str]]],
          eval_convs: list[list[dict[str, str]]], settings: TrainSettings, progress: ProgressFn,
          should_stop: Callable[[], bool]) -> TrainResult:
    """Train a LoRA adapter on `base_dir`; resumes from `checkpoint` when it exists.

    Raises:
        InterruptedError: `should_stop()` turned true; a checkpoint of the last finished step was saved.
    """
    from peft import get_peft_model_state_dict

    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    built = build_trainable(base_dir, settings.method, settings.trainer, settings)
    model, tokenizer = built.model, built.tokenizer
    pad = pad_id(tokenizer)
    examples = [e for e in (encode(tokenizer, c, settings.max_seq_length) for c in train_convs) if e is not None]
    eval_examples = [e for e in (encode(tokenizer, c, settings.max_seq_length) for c in eval_convs) if e]
    if not examples:
        raise ValueError("no training example has assistant tokens within max_seq_length")

    def weights_of(trained: Any) -> dict[str, Any]:
        state: dict[str, Any] = get_peft_model_state_dict(trained) if built.is_peft else trained.state_dict()
        return state

    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if settings.neftune_noise_alpha:
        _neftune(model, settings.neftune_noise_alpha)
    per_step = settings.batch_size * settings.gradient_accumulation
    total = settings.max_steps or max(1, math.ceil(settings.epochs * len(examples) / per_step))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    warmup = max(1, int(total * settings.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    step, losses, eval_before = 0, list[float](), None
    if checkpoint.exists():
        step, losses, eval_before = _restore(checkpoint, model, optimizer, scheduler, built.is_peft)
        progress(phase="resumed", step=step, total=total, message=f"resumed from step {step}", force=True)
    else:
        progress(phase="evaluating", message="held-out loss before training", step=0, total=total, force=True)
        eval_before = evaluate(model, eval_examples, settings.batch_size, pad)

    def save() -> None:
        _save_checkpoint(checkpoint, {
            "step": step, "adapter": weights_of(model), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng_torch": torch.get_rng_state(),
            "rng_python": random.getstate(), "losses": losses, "eval_loss_before": eval_before})

    model.train()
    resumed_from = step
    started, tokens_seen, steps_run = time.monotonic(), 0, 0
    while step < total:
        if should_stop():
            save()
            raise InterruptedError(f"stopped at step {step}")
        step_loss = 0.0
        for micro in range(settings.gradient_accumulation):
            picked = collate(_batch_at(examples, settings, step, micro), pad)
            batch = {k: v.to(built.device) for k, v in picked.items()}
            loss = model(**batch).loss / settings.gradient_accumulation
            loss.backward()
            step_loss += loss.item()
            tokens_seen += int(batch["attention_mask"].sum())
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_run += 1
        losses.append(round(step_loss, 5))
        elapsed = time.monotonic() - started
        progress(phase="training", message="", step=step, total=total, epoch=round(step * per_step / len(examples), 3),
                 loss=step_loss, learning_rate=scheduler.get_last_lr()[0], tokens_per_s=tokens_seen / elapsed,
                 eta_s=elapsed / steps_run * (total - step))
        if step % settings.checkpoint_every == 0 or step == total:
            save()
    train_elapsed = time.monotonic() - started
    progress(phase="evaluating", message="held-out loss after training", step=step, total=total, force=True)
    eval_after = evaluate(model, eval_examples, settings.batch_size, pad)
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    return TrainResult(steps=step, eval_loss_before=eval_before, eval_loss_after=eval_after,
                       train_loss_last=losses[-1] if losses else None,
                       tokens_per_s=tokens_seen / train_elapsed if train_elapsed else 0.0,
                       seconds_per_step=train_elapsed / max(steps_run, 1), losses=losses, resumed_from=resumed_from,
                       model=model, tokenizer=tokenizer)
