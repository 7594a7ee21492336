"""One training run as the worker hands it to the training core: in the worker's own process, or written to the
job folder for each rank of a data-parallel run to read (`training.rank`). Pure pydantic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.training.settings import ResolvedTraining

# sft: conversations, loss on the assistant tokens; dpo and orpo: prompt, chosen, rejected; kto: prompt,
# completion, label (a desirable answer or not).
TrainMethod = Literal["sft", "dpo", "kto", "orpo"]
RECORD_KIND: dict[str, str] = {"sft": "sft", "dpo": "preference", "orpo": "preference", "kto": "kto"}


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: TrainMethod = "sft"
    base_dir: str = Field(..., description="The HF folder of the base model")
    job_dir: str = Field(..., description="Checkpoints, the adapter and the result go here")
    train_file: str = Field(..., description="The dataset version's train split (JSON lines)")
    eval_file: str = Field(..., description="Its eval split: the held-out figures before and after")
    settings: ResolvedTraining
    beta: float = Field(0.1, gt=0.0, le=10.0, description="DPO/KTO: KL strength; ORPO: the odds-ratio weight")
    precompute_ref_log_probs: bool = Field(False, description="DPO/KTO: reference log-probs once, before training")

    @property
    def job(self) -> Path:
        return Path(self.job_dir)

    @property
    def adapter_dir(self) -> Path:
        return self.job / "adapter"

    @property
    def result_file(self) -> Path:
        return self.job / "train-result.json"

    @property
    def before_file(self) -> Path:
        return self.job / "measured-before.json"

    @property
    def stop_file(self) -> Path:
        """Created by the worker to stop a data-parallel run (each rank looks for it after every step)."""
        return self.job / "stop"


def read_records(path: str) -> list[dict[str, Any]]:
    """A split's records as the dataset version stores them."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
