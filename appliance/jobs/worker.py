"""`python -m appliance.jobs.worker SPEC.json`: runs one job in its own process.

Exit codes: 0 succeeded, 3 cancelled (after checkpointing), 1 failed (the last stderr lines say why).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from appliance.jobs.events import Emitter, JobCancelled, JobFailed

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 3


def main(argv: list[str]) -> int:
    emitter = Emitter()
    emitter.install_signal_handler()  # first: a cancel that comes while the imports below run is kept, not fatal
    from appliance.jobs.kinds import KINDS

    spec: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    kind = KINDS.find(spec["type"])
    if kind is None:
        print(KINDS.unknown(spec["type"]), file=sys.stderr)
        emitter.result(error=KINDS.unknown(spec["type"]))
        return EXIT_FAILED
    try:
        # Only this kind's handler is imported, here: it may pull in torch and transformers.
        result = kind.load_handler()(spec, emitter)
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
