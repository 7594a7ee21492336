"""The appliance's day in one process tree, run by test_zero_egress under `unshare -n` and strace: the daemon
starts and serves the starter, a dataset is imported, a short fine-tune runs, and the official client chats.
Prints one JSON line with what it saw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import openai

from appliance.testing.daemon import DaemonProcess
from appliance.testing.flow import finetune, import_dataset
from appliance.testing.shopfloor import write_dataset

STARTER = "smollm2-135m-instruct"


def main(state_dir: Path) -> None:
    # No HF_* variable from here: the daemon must force the offline modes itself.
    daemon = DaemonProcess(state_dir, env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}).start(timeout=120)
    try:
        dataset = write_dataset(state_dir / "imports" / "shop.jsonl")
        import_dataset(daemon, str(dataset), "shop", STARTER)
        job = finetune(daemon, {"base_model": STARTER, "dataset": "shop",
                                "overrides": {"max_steps": 2, "checkpoint_every": 2}})
        client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0, timeout=120)
        answer = client.chat.completions.create(model=STARTER, max_tokens=16, temperature=0, messages=[
            {"role": "user", "content": "What is the capital of France?"}]).choices[0].message.content
        print(json.dumps({"finetune": job["state"], "answer": answer}))
    finally:
        daemon.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
