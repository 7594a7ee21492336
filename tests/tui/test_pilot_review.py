"""The Review screen against a real daemon serving the starter model: capture switched on by a policy, three
answers asked through the official openai client, then one accepted, one edited (its answer changed) and one
rejected on screen, the accepted and edited ones exported from the screen into a dataset version; every step
checked through the API."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.capturetools import captured_chats, inference_key, set_policy
from tests.helpers import DaemonProcess
from tests.tui.review_pilot import review_through_tui

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"


def test_accept_edit_reject_then_export(serving_daemon: DaemonProcess) -> None:
    url, key = serving_daemon.url, serving_daemon.admin_key()
    set_policy(url, key, STARTER)
    app = inference_key(url, key, "pilot-app")
    ids = captured_chats(url, key, app, STARTER, ["Mail the report to ops@example.com.", "What is two plus two?",
                                                  "Say hello."])
    reviewed = review_through_tui(url, key, accept=[ids[0]], edit={ids[1]: "Two plus two is four."}, reject=[ids[2]],
                                  export=("sft", "pilot-reviewed"), base_model=STARTER)
    assert "ops@example.com" not in str(reviewed.items[ids[0]])  # what the reviewer saw was redacted
    http = httpx.Client(base_url=url, headers=serving_daemon.admin_headers(), timeout=30)
    listed = http.get("/api/v1/captures", params={"key": "pilot-app"}).json()["items"]
    assert {i["response_id"]: i["state"] for i in listed} == {ids[0]: "accepted", ids[1]: "edited",
                                                               ids[2]: "rejected"}
    edited = http.get(f"/api/v1/captures/{ids[1]}").json()["review"]["messages"]
    assert edited[-1] == {"role": "assistant", "content": "Two plus two is four."}
    assert reviewed.export_job is not None
    deadline = time.monotonic() + 180
    while (job := http.get(f"/api/v1/jobs/{reviewed.export_job}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "succeeded", job["error"]
    record = http.get("/api/v1/datasets/pilot-reviewed").json()
    assert record["report"]["kind"] == "sft" and record["records_valid"] == 2  # accepted + edited, not rejected
