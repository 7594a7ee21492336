"""End-to-end benchmark: 200 training examples to a fine-tuned model serving live, on the starter model.

The same API calls an operator makes (appliance/testing/flow.py): import the dataset, fine-tune (LoRA, the profile's
defaults, one epoch over the 200 examples unless --steps), export Q8_0 behind the parity gate, switch the live
deployment blue/green behind the eval gate. Each stage is timed from the client side.
Prints:
  - seconds per stage and in total; total ÷ the 5-minute target (target < 1.0)
  - total ÷ the fine-tune stage alone (the baseline measured in this run: how much the flow adds to training)
  - the parity gate's report (exact checks with any accepted near-ties, agreement per variant)
Usage: python bench/e2e.py [--examples 200] [--steps N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.testing.daemon import DaemonProcess, wait_deployment
from appliance.testing.flow import deploy_call, export, finetune, import_dataset
from appliance.testing.shopfloor import write_dataset, write_golden

MODEL = "smollm2-135m-instruct"
TARGET_S = 300.0


def run(examples: int, steps: int | None) -> dict[str, Any]:
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        daemon = DaemonProcess(Path(tmp) / "state").start()
        try:
            wait_deployment(daemon, MODEL)
            imports = daemon.state_dir / "imports"
            golden = str(write_golden(imports / "golden.jsonl"))
            dataset = str(write_dataset(imports / "shop.jsonl", examples))
            started = time.monotonic()

            def stage(name: str, since: float) -> float:
                now = time.monotonic()
                stages[name] = round(now - since, 1)
                print(f"  {name:<22} {stages[name]:>7.1f} s", flush=True)
                return now

            mark = started
            imported = import_dataset(daemon, dataset, "shop", MODEL)
            mark = stage("dataset import", mark)
            overrides = {"max_steps": steps} if steps else {}
            trained = finetune(daemon, {"base_model": MODEL, "dataset": "shop", "golden": golden,
                                        "adapter_name": "shop-lora", "overrides": overrides})
            mark = stage("fine-tune", mark)
            exported = export(daemon, {"adapter": "shop-lora", "variants": ["Q8_0"], "golden": golden})
            mark = stage("export + parity gate", mark)
            switched = deploy_call(daemon, "POST", f"/api/v1/deployments/{MODEL}/switch",
                                   {"model": "shop-lora-q8_0", "reason": "bench"})
            stage("eval gate + switch", mark)
            total = round(time.monotonic() - started, 1)
        finally:
            daemon.stop()
    return {"examples": examples, "train_examples": imported["result"].get("train_count"),
            "steps": trained["result"].get("steps"), "stages_s": stages, "total_s": total,
            "ratio_to_target": round(total / TARGET_S, 3),
            "ratio_to_finetune": round(total / stages["fine-tune"], 3),
            "golden_after": trained["result"].get("golden_after"), "parity": exported["result"]["parity"],
            "parity_summary": exported["result"].get("parity_summary", ""),
            "gate": switched["gate"], "switch_timings_s": switched["timings_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--steps", type=int, help="cap the fine-tune's steps (default: one epoch)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"e2e: {args.examples} examples → fine-tune → export Q8_0 → live ({MODEL})", flush=True)
    result = run(args.examples, args.steps)
    print(f"total {result['total_s']:.1f} s; ÷ 5-minute target = {result['ratio_to_target']:.2f} "
          f"({'met' if result['ratio_to_target'] < 1 else 'MISSED'}); ÷ fine-tune alone = "
          f"{result['ratio_to_finetune']:.2f}")
    print(f"steps {result['steps']}, golden after {result['golden_after']}, gate: {result['gate']['reason']}")
    print("parity gate:\n" + "\n".join(f"  {line}" for line in result["parity_summary"].splitlines()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
