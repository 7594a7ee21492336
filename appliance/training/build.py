"""The trainable model for each training method of the profiles.

lora-cpu    fp32 base on the CPU + PEFT LoRA (threads = physical cores)
lora-bf16   bf16 base on the GPU + PEFT LoRA
qlora-4bit  NF4 base on the GPU + LoRA: Unsloth when installed (trainer = "unsloth"), else bitsandbytes + PEFT
full        every weight trainable, bf16 on the GPU
The GPU branches need the `gpu` extra (bitsandbytes, optionally unsloth) and a CUDA device; with several GPUs
the PEFT branches place the layers over all of them through accelerate (`device_map="auto"`), Unsloth uses one.
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


def _lora_config(settings: ResolvedTraining) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(settings.target_modules), task_type="CAUSAL_LM")


def _require_cuda(method: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise MethodUnavailable(f"method {method} needs a CUDA GPU; torch sees none (CPU build or no driver)")


def _device_map() -> Any:
    """One GPU: all of it there. Several: accelerate splits the layers across them (model parallel, one
    process; a model too big for one card trains, none of the cards sits idle holding a copy)."""
    import torch

    return "auto" if torch.cuda.device_count() > 1 else {"": 0}


def _cpu_lora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    return Trainable(get_peft_model(model, _lora_config(settings)), tokenizer, "cpu", True, "peft fp32 on CPU")


def _gpu_lora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_cuda("lora-bf16")
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16, device_map=_device_map())
    return Trainable(get_peft_model(model, _lora_config(settings)), tokenizer, "cuda", True, "peft bf16 on GPU")


def _unsloth_qlora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    from unsloth import FastLanguageModel  # imported first: it patches transformers

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(base_dir), max_seq_length=settings.max_seq_length, load_in_4bit=True, dtype=None)
    model = FastLanguageModel.get_peft_model(
        model, r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing else False,
        random_state=settings.seed)
    return Trainable(model, tokenizer, "cuda", True, "unsloth QLoRA (NF4)")


def _bnb_qlora(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MethodUnavailable("method qlora-4bit needs bitsandbytes: install the 'gpu' extra")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), quantization_config=quant, device_map=_device_map())
    model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        model, use_gradient_checkpointing=settings.gradient_checkpointing)
    return Trainable(get_peft_model(model, _lora_config(settings)), tokenizer, "cuda", True,
                     "peft + bitsandbytes QLoRA (NF4)")


def _full(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_cuda("full")
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16, device_map=_device_map())
    return Trainable(model, tokenizer, "cuda", False, "full fine-tune, bf16 on GPU")


def build_trainable(base_dir: Path, settings: ResolvedTraining) -> Trainable:
    """The model to train for the settings' method (and trainer).

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
        if settings.trainer == "unsloth" and importlib.util.find_spec("unsloth") is not None:
            return _unsloth_qlora(base_dir, settings)
        return _bnb_qlora(base_dir, settings)
    if method == "full":
        return _full(base_dir, settings)
    raise MethodUnavailable(f"unknown training method {method!r}")
