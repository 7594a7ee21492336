"""Shared by the trials tests: a real SQLite state store in a file, answers, shadow requests, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.state import StateStore
from appliance.trials.compare import Answer
from appliance.trials.models import ShadowRequest

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state" / "state.db").open()
    yield opened
    opened.close()


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ok(text: str, latency_s: float = 0.5, tokens: int | None = None) -> Answer:
    return Answer(200, text, latency_s, "stop", tokens)


def request(question: str, answer: str, *, live: str = "chat", candidate: str = "chat-v2", latency_s: float = 0.5,
            created_at: float = T0, **fields: object) -> ShadowRequest:
    body = {"model": live, "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": question}],
            "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 64}
    return ShadowRequest(live=live, candidate=candidate, body=body, live_answer=ok(answer, latency_s),
                         created_at=created_at, **fields)  # type: ignore[arg-type]
