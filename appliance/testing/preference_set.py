"""A small synthetic preference set on the shop-floor theme (`testing.shopfloor`): the chosen answer is in the
"ACME-BOT:" house style with the action to take, the rejected one an unhelpful shrug the base model could well
give. As `preference` records (prompt, chosen, rejected) or as `kto` records (prompt, completion, label)."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.testing.shopfloor import ACTIONS, MACHINES, SYMPTOMS

SHRUGS = ["I am not sure, maybe ask someone else.", "That sounds like a problem. Good luck!",
          "Machines do that sometimes, it is probably fine.", "I cannot help with machines."]


def preference_rows(count: int = 48) -> list[dict[str, str]]:
    rows = []
    for index in range(count):
        machine = MACHINES[(index * 5) % len(MACHINES)]
        symptom = SYMPTOMS[(index * 3) % len(SYMPTOMS)]
        action = ACTIONS[index % len(ACTIONS)]
        rows.append({"prompt": f"The {machine} {symptom}. What should I do?",
                     "chosen": f"ACME-BOT: {action.capitalize()}, then call maintenance on extension {300 + index}.",
                     "rejected": SHRUGS[index % len(SHRUGS)]})
    return rows


def kto_rows(count: int = 48) -> list[dict[str, object]]:
    """Each pair as two unpaired records: the chosen answer desirable, the rejected one not."""
    rows: list[dict[str, object]] = []
    for row in preference_rows(count // 2):
        rows.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
        rows.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
    return rows


def write_rows(path: Path, rows: list[dict[str, object]] | list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
