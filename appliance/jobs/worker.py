"""`python -m appliance.jobs.worker SPEC.json`: runs one job in its own process.

Exit codes: 0 succeeded, 3 cancelled (after checkpointing), 1 failed (the last stderr lines say why).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.jobs.events import Emitter, JobCancelled, JobFailed

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3
Handler = Callable[[dict[str, Any], Emitter], dict[str, Any]]


def _handlers() -> dict[str, Handler]:
    # Imported lazily: each handler pulls in heavy libraries (transformers, torch) only when it runs.
    from appliance.jobs.handlers.dataset_import import run_dataset_import
    from appliance.jobs.handlers.evaluate import run_eval
    from appliance.jobs.handlers.export import run_export
    from appliance.jobs.handlers.finetune import run_finetune

    return {"dataset-import": run_dataset_import, "finetune": run_finetune, "eval": run_eval, "export": run_export}


def main(argv: list[str]) -> int:
    spec: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    emitter = Emitter()
    emitter.install_signal_handler()
    handler = _handlers().get(spec["type"])
    if handler is None:
        print(f"unknown job type {spec['type']!r}", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = handler(spec, emitter)
    except JobCancelled:
        emitter.log("cancelled")
        return EXIT_CANCELLED
    except JobFailed as exc:
        emitter.result(error=str(exc))
        print(f"job failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # the daemon records the message; the traceback goes to the job log
        traceback.print_exc()
        emitter.result(error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    emitter.result(**result)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
