"""One fine-tune and one export of the starter, made once through the real daemon and shared by the package: the
flow's own tests (progress, gates, live adapter, blue/green), the export's (artifacts, lineage, parity, a broken
layout) and the standalone eval job. Each used to train or export on its own daemon: minutes of the suite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.testing.daemon import wait_deployment
from appliance.testing.flow import export, import_dataset, job_events, submit
from appliance.testing.shopfloor import write_dataset, write_golden
from tests.helpers import DaemonProcess

STARTER = "smollm2-135m-instruct"
ADAPTER = "shop-lora"
STEPS = 16


@dataclass
class Flow:
    daemon: DaemonProcess
    golden: Path
    events: list[dict[str, Any]]  # the fine-tune job's server-sent events, snapshot to final state
    trained: dict[str, Any]
    exported: dict[str, Any]


@pytest.fixture(scope="package")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("e2e") / "state").start()
    try:
        wait_deployment(daemon, STARTER)
        imports = daemon.state_dir / "imports"
        golden = write_golden(imports / "golden.jsonl")
        import_dataset(daemon, str(write_dataset(imports / "shop.jsonl")), "shop", STARTER)
        job_id = submit(daemon, "/api/v1/jobs", {"type": "finetune", "params": {
            "base_model": STARTER, "dataset": "shop", "golden": str(golden), "adapter_name": ADAPTER,
            "overrides": {"max_steps": STEPS, "learning_rate": 1e-3, "checkpoint_every": 8}}})
        events = job_events(daemon, job_id)
        assert events[-1].get("state") == "succeeded", (events[-1], daemon.log()[-3000:])
        # No golden set named: the export takes the one the adapter was fine-tuned with, from its lineage.
        exported = export(daemon, {"adapter": ADAPTER, "variants": ["Q8_0", "Q4_K_M"]})
        yield Flow(daemon, golden, events, events[-1]["result"], exported["result"])
    finally:
        daemon.stop()
