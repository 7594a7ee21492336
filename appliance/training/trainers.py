"""The TRL trainer of each method, configured from a job's resolved settings.

sft   `SFTTrainer` on conversations we tokenize ourselves (`encode`: the loss on the assistant turns only, as
      before; TRL would put it on the whole sequence unless the chat template marks the assistant turns)
dpo   `DPOTrainer`; with LoRA the reference is the base with the adapter disabled (the trainer applies the LoRA)
kto   `KTOTrainer`, the same reference
orpo  `ORPOTrainer` (TRL's experimental module in 1.16), no reference model
Every one logs each step, saves a checkpoint every `checkpoint_every` steps into the job's staging folder, reports
nowhere (report_to none) and writes no model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.training.build import Trainable
from appliance.training.checkpoints import staging_dir
from appliance.training.encode import encode
from appliance.training.request import TrainRequest
from appliance.training.settings import ResolvedTraining


def common_args(settings: ResolvedTraining, job_dir: Path, on_cpu: bool) -> dict[str, Any]:
    """TrainingArguments shared by the methods; the LR schedule is warmup then linear decay to 0, as before."""
    args: dict[str, Any] = {
        "output_dir": str(staging_dir(job_dir)),
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation, "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.epochs, "max_steps": settings.max_steps or -1,
        "lr_scheduler_type": "linear", "warmup_steps": settings.warmup_ratio,  # below 1: a share of the steps
        "weight_decay": 0.0, "logging_steps": 1, "save_strategy": "steps", "save_steps": settings.checkpoint_every,
        "save_total_limit": None, "seed": settings.seed, "data_seed": settings.seed, "report_to": "none",
        "disable_tqdm": True, "use_cpu": on_cpu, "bf16": settings.precision == "bf16" and not on_cpu,
        "fp16": settings.precision == "fp16" and not on_cpu, "dataloader_num_workers": 0,
        "dataloader_pin_memory": not on_cpu, "gradient_checkpointing": settings.gradient_checkpointing,
        "ddp_find_unused_parameters": False, "remove_unused_columns": False, "push_to_hub": False,
    }
    if settings.layout == "fsdp":
        args["fsdp"] = "full_shard auto_wrap"
        args["fsdp_config"] = {"use_orig_params": True, "cpu_ram_efficient_loading": True}
    return args


class _Ours:
    """What our trainers change: the schedule, and no README model card in checkpoints (it names hub paths and
    trackers).

    The schedule is the one the appliance always trained with: a linear warmup that starts above zero (the first
    step learns), then a linear decay that reaches zero at the last step. transformers' "linear" spends the
    first step at learning rate 0."""

    args: Any
    optimizer: Any
    lr_scheduler: Any

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        return None

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        import torch

        if self.lr_scheduler is None:
            total = num_training_steps
            warmup = max(1, int(total * self.args.warmup_steps)) if self.args.warmup_steps < 1 else \
                int(self.args.warmup_steps)

            def factor(step: int) -> float:
                return min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))

            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
        return self.lr_scheduler


def _sft_class(fused_head: bool) -> type:
    """SFTTrainer with our schedule. `fused_head` False: the loss the way transformers' Trainer computes it (the
    model's own cross-entropy over full logits) instead of TRL's chunked log-prob LM head. On this CPU, TRL's head
    cost 24 % more CPU time per step than the old loop (bench/finetune.py, 1 thread: 3.44 vs 2.78 s; the tiles'
    matmuls and exp in `trl/kernels/chunked_logprob.py`); on a GPU it saves the logits' memory and stays."""
    from transformers import Trainer
    from trl.trainer.sft_trainer import SFTTrainer

    class Sft(_Ours, SFTTrainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            if fused_head:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[no-untyped-call]
            if model.training:  # the tokens TRL counts for its num_tokens log, all ranks, padding excluded
                seen = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
                self._total_train_tokens += int(seen)
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return Trainer.compute_loss(self, model, {**inputs, "use_cache": False}, return_outputs,
                                        num_items_in_batch)

    return Sft


def _sft(request: TrainRequest, built: Trainable, records: list[dict[str, Any]], callbacks: list[Any],
         args: dict[str, Any]) -> Any:
    from datasets import Dataset
    from trl.trainer.sft_config import SFTConfig

    settings = request.settings
    rows = [e for e in (encode(built.tokenizer, r["messages"], settings.max_seq_length) for r in records) if e]
    if not rows:
        raise ValueError("no training example has assistant tokens within max_seq_length")
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in rows])
    # The optimizer the appliance's fine-tunes always had (AdamW's own weight decay, no gradient clipping): the
    # same settings train the same way as before the move to TRL.
    config = SFTConfig(**{**args, "weight_decay": 0.01, "max_grad_norm": 0.0}, max_length=settings.max_seq_length,
                       packing=False, neftune_noise_alpha=settings.neftune_noise_alpha)
    trainer_class = _sft_class(fused_head=built.device != "cpu")
    return trainer_class(model=built.model, args=config, train_dataset=data, processing_class=built.tokenizer,
                         peft_config=built.lora, callbacks=callbacks)


def _preference_rows(request: TrainRequest, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if request.method == "kto":
        return [{"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])} for r in records]
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records]


def _preference(request: TrainRequest, built: Trainable, records: list[dict[str, Any]], callbacks: list[Any],
                args: dict[str, Any]) -> Any:
    from datasets import Dataset

    data = Dataset.from_list(_preference_rows(request, records))
    if not len(data):
        raise ValueError(f"the dataset's train split holds no {request.method} records")
    length = request.settings.max_seq_length
    if request.method == "dpo":
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer

        config: Any = DPOConfig(**args, beta=request.beta, max_length=length,
                                precompute_ref_log_probs=request.precompute_ref_log_probs)
        base: Any = DPOTrainer
    elif request.method == "kto":
        from trl.trainer.kto_config import KTOConfig
        from trl.trainer.kto_trainer import KTOTrainer

        config = KTOConfig(**args, beta=request.beta, max_length=length,
                           precompute_ref_log_probs=request.precompute_ref_log_probs)
        base = KTOTrainer
    else:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        config = ORPOConfig(**args, beta=request.beta, max_length=length)
        base = ORPOTrainer
    trainer_class = type(base.__name__, (_Ours, base), {})
    return trainer_class(model=built.model, args=config, train_dataset=data, processing_class=built.tokenizer,
                         peft_config=built.lora, callbacks=callbacks)


def make_trainer(request: TrainRequest, built: Trainable, records: list[dict[str, Any]],
                 callbacks: list[Any]) -> Any:
    """The configured trainer of the request's method over the train split's `records`.

    Raises:
        ValueError: no record can be trained on.
    """
    from transformers.trainer_callback import PrinterCallback

    args = common_args(request.settings, request.job, built.device == "cpu")
    build = _sft if request.method == "sft" else _preference
    trainer = build(request, built, records, callbacks, args)
    trainer.remove_callback(PrinterCallback)  # it prints each log line on stdout, the worker's event channel
    return trainer
