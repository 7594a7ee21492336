"""The crash test's child: a CaptureWriter fed continuously. After each batch commits, the batch's ids are
appended to the witness file (one line per commit), so the parent knows what was committed when it kills this
process with SIGKILL. Run: python -m tests.capture.writer_child STATE_DB WITNESS FIRST_NUMBER"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from appliance.capture.models import CapturedItem, ChatMessage
from appliance.capture.writer import CaptureWriter
from appliance.state import StateStore

T0 = 1_700_000_000.0
FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 25  # ~1.4 kB: batches take real writes


def expected(n: int) -> CapturedItem:
    """Item number `n`, the same in the child and in the parent's check."""
    return CapturedItem(
        response_id=f"chatcmpl-{n:010d}", deployment=f"dep{n % 3}", model_id="m1", model_name="smollm2",
        key_id="k1", key_name="app", created_at=T0 + n, latency_ms=n % 997, prompt_tokens=n % 50,
        completion_tokens=n % 70, finish_reason="stop", stream=n % 2 == 0,
        messages=[ChatMessage(role="system", content="Be brief."),
                  ChatMessage(role="user", content=f"question {n}: {FILLER}")],
        answer=f"answer {n}: {FILLER}",
    )


async def feed(db: Path, witness: Path, first: int) -> None:
    store = StateStore(db).open()
    with witness.open("a", encoding="utf-8") as out:
        def committed(ids: list[str]) -> None:  # on the writer's thread, after the COMMIT
            out.write(" ".join(ids) + "\n")
            out.flush()

        writer = CaptureWriter(store, CollectorRegistry(), max_queue=2000, max_batch=100, flush_interval_s=0.01,
                               on_written=committed)
        writer.start()
        number = first
        while True:
            for _ in range(25):
                writer.submit(expected(number))
                number += 1
            await asyncio.sleep(0.002)


if __name__ == "__main__":
    asyncio.run(feed(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
