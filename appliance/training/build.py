"""The trainable model for each training method of the profiles.

lora-cpu    fp32 base on the CPU + PEFT LoRA (threads = physical cores)
lora-bf16   bf16 base on the GPU + PEFT LoRA
qlora-4bit  NF4 base on the GPU + LoRA: Unsloth when installed (trainer = "unsloth"), else bitsandbytes + PEFT
full        every weight trainable, bf16 on the GPU
The GPU branches need the `gpu` extra (bitsandbytes, optionally unsloth) and a CUDA device. With several GPUs the
job runs one process per GPU (data parallel, `training.launch`): each process loads the whole model on its own
GPU (LOCAL_RANK); Unsloth trains on one GPU only, so a data-parallel QLoRA uses bitsandbytes + PEFT.

`build_trainable` gives the model with its adapter; `build_base` gives the base and the LoRA config separately,
for the trainers that wrap it themselves (the preference trainers, whose LoRA reference is then the base with the
adapter disabled).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.training.settings import ResolvedTraining


class MethodUnavailable(Exception):
    """The profile's method cannot run on this box (no CUDA, missing extra); the message says what is missing."""


@dataclass
class Trainable:
    model: Any
    tokenizer: Any
    device: str
    is_peft: bool
    note: str
    lora: Any = None  # a LoRA config the trainer applies itself (build_base); None: `model` is ready to train


def _lora_config(settings: ResolvedTraining) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(settings.target_modules), task_type="CAUSAL_LM")


def _require_cuda(method: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise MethodUnavailable(f"method {method} needs a CUDA GPU; torch sees none (CPU build or no driver)")


def _device_map() -> Any:
    """The whole model on this process's GPU: LOCAL_RANK under data parallel (one process per GPU), else 0."""
    import os

    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def _tokenizer(base_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    if tokenizer.pad_token is None:  # the trainers pad batches; the end-of-sequence token is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _plain(model: Any) -> Any:
    # A model converted from a GGUF may still say it is gguf-quantized; the trainers refuse such a model.
    if getattr(model.config, "quantization_config", None) is not None and \
            getattr(model.config.quantization_config, "quant_method", None) == "gguf":
        delattr(model.config, "quantization_config")
    return model


def _cpu_lora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    return Trainable(_plain(model), _tokenizer(base_dir), "cpu", True, "peft fp32 on CPU", _lora_config(settings))


def _gpu_lora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from transformers import AutoModelForCausalLM

    _require_cuda("lora-bf16")
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16, device_map=_device_map())
    return Trainable(_plain(model), _tokenizer(base_dir), "cuda", True, "peft bf16 on GPU", _lora_config(settings))


def _unsloth_qlora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    from unsloth import FastLanguageModel  # imported first: it patches transformers

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(base_dir), max_seq_length=settings.max_seq_length, load_in_4bit=True, dtype=None,
        local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing else False,
        random_state=settings.seed)
    return Trainable(model, tokenizer, "cuda", True, "unsloth QLoRA (NF4)")


def _bnb_qlora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MethodUnavailable("method qlora-4bit needs bitsandbytes: install the 'gpu' extra")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), quantization_config=quant, device_map=_device_map())
    model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        model, use_gradient_checkpointing=settings.gradient_checkpointing)
    return Trainable(model, _tokenizer(base_dir), "cuda", True, "peft + bitsandbytes QLoRA (NF4)",
                     _lora_config(settings))


def _full(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from transformers import AutoModelForCausalLM

    _require_cuda("full")
    # Under FSDP the trainer shards the model itself: it loads on the CPU first, never whole on one GPU.
    placement = None if settings.layout == "fsdp" else _device_map()
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16, device_map=placement)
    return Trainable(_plain(model), _tokenizer(base_dir), "cuda", False, f"full fine-tune, bf16 on GPU "
                     f"({settings.layout})")


def build_base(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    """The model for the settings' method (and trainer); its LoRA config in `lora`, not applied (Unsloth's
    QLoRA comes with its adapter applied: `lora` is None).

    Raises:
        MethodUnavailable: the method needs hardware or packages this box lacks.
    """
    method = settings.method
    if method == "lora-cpu":
        return _cpu_lora(base_dir, settings)
    if method == "lora-bf16":
        return _gpu_lora(base_dir, settings)
    if method == "qlora-4bit":
        _require_cuda(method)
        unsloth = settings.trainer == "unsloth" and importlib.util.find_spec("unsloth") is not None
        if unsloth and settings.processes == 1:
            return _unsloth_qlora(base_dir, settings)
        return _bnb_qlora(base_dir, settings)
    if method == "full":
        return _full(base_dir, settings)
    raise MethodUnavailable(f"unknown training method {method!r}")


def build_trainable(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    """`build_base` with its LoRA applied: the model ready to train."""
    built = build_base(base_dir, settings)
    if built.lora is None:
        return built
    from peft import get_peft_model

    return Trainable(get_peft_model(built.model, built.lora), built.tokenizer, built.device, True, built.note)
