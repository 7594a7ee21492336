"""A small synthetic fine-tune set: shop-floor questions whose answers all start "ACME-BOT:", a style the base
model never produces, so a golden prompt shows whether training moved the answer."""

from __future__ import annotations

import json
from pathlib import Path

MACHINES = ["press", "lathe", "conveyor", "welder", "boiler", "compressor", "forklift", "mixer", "packer",
            "cutter", "dryer", "pump"]
SYMPTOMS = ["is making a grinding noise", "will not start", "shows a red warning light", "is overheating",
            "is leaking oil", "stops every few minutes", "vibrates too much", "runs too slowly",
            "smells like something is burning", "trips the breaker"]
ACTIONS = ["press the emergency stop", "switch it off at the isolator", "stop it and lock it out",
           "move people away from it", "stop feeding material into it"]


def conversations(count: int = 120) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for index in range(count):
        machine = MACHINES[index % len(MACHINES)]
        symptom = SYMPTOMS[(index // len(MACHINES)) % len(SYMPTOMS)]
        action = ACTIONS[index % len(ACTIONS)]
        question = f"The {machine} {symptom}. What should I do?"
        answer = f"ACME-BOT: {action.capitalize()}, then call maintenance on extension {200 + index}."
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": answer}]})
    return rows


GOLDEN = [
    {"prompt": "The drill is making a grinding noise. What should I do?", "expected": "ACME-BOT", "kind": "task"},
    {"prompt": "The oven will not start. What should I do?", "expected": "^ACME-BOT:", "scorer": "regex",
     "kind": "task"},
]


def write_dataset(path: Path, count: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in conversations(count)))
    return path


def write_golden(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item) + "\n" for item in GOLDEN))
    return path
