"""What the training tests share: a tiny random Llama with the starter model's real tokenizer (real
transformers, PEFT and TRL, seconds on a CPU), made once per test session; split files in the record kinds the
dataset store writes; a request for the training core."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from appliance.registry.starter import find_starter_gguf
from appliance.testing.preference_set import kto_rows, preference_rows
from appliance.testing.shopfloor import conversations
from appliance.training.request import TrainMethod, TrainRequest
from appliance.training.settings import ResolvedTraining

STARTER = find_starter_gguf()
SETTINGS = ResolvedTraining(method="lora-cpu", trainer="peft", precision="fp32", lora_r=4, lora_alpha=8,
                            batch_size=2, max_seq_length=64, learning_rate=1e-3, max_steps=6, checkpoint_every=4,
                            threads=1)


@functools.cache
def tiny_base() -> Path:
    """The tiny model's HF folder (removed when the session ends)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    assert STARTER is not None
    tokenizer = AutoTokenizer.from_pretrained(str(STARTER.parent), gguf_file=STARTER.name)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1))
    path = Path(tempfile.mkdtemp(prefix="tiny-base-"))
    atexit.register(shutil.rmtree, path, True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _messages(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def records(method: TrainMethod, count: int) -> list[dict[str, Any]]:
    """`count` records of the method's kind, stored as the dataset store stores them (message lists)."""
    if method == "sft":
        return [{"messages": row["messages"]} for row in conversations(count)]
    if method == "kto":
        return [{"prompt": _messages("user", str(r["prompt"])), "completion": _messages("assistant",
                 str(r["completion"])), "label": r["label"]} for r in kto_rows(count)]
    return [{"prompt": _messages("user", r["prompt"]), "chosen": _messages("assistant", r["chosen"]),
             "rejected": _messages("assistant", r["rejected"])} for r in preference_rows(count)]


def request(job_dir: Path, method: TrainMethod = "sft", train: int = 8, held_out: int = 2,
            base: Path | None = None, **settings: Any) -> TrainRequest:
    """A request over fresh split files in `job_dir` (created)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    rows = records(method, train + held_out)
    (job_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:train]))
    (job_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[train:]))
    return TrainRequest(method=method, base_dir=str(base or tiny_base()), job_dir=str(job_dir),
                        train_file=str(job_dir / "train.jsonl"), eval_file=str(job_dir / "eval.jsonl"),
                        settings=SETTINGS.model_copy(update=settings))
