"""The prompt set of a distillation: a pinned dataset version's prompts and/or captured requests, each with a
stable key (a rerun finds the answers it already has by it) and its lineage.

- A dataset record's prompt: an SFT conversation up to its last user turn (system and earlier turns kept); a
  preference or KTO record's `prompt`. Keys `dataset:<split>:<record index>`.
- A captured request: its messages as captured (after the capture redaction), up to the last user turn. Keys
  `capture:<response id>`; the review queue's filters choose them (newest first, at most `limit`).
The same prompt twice (by its messages) is asked once: the first occurrence is kept, datasets before captures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.capture.models import CaptureFilter, as_dicts
from appliance.capture.review import get_capture, list_captures
from appliance.datasets.errors import DatasetError
from appliance.datasets.store import DatasetStore
from appliance.jobs.events import JobFailed

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Prompt:
    key: str
    messages: Messages
    source: dict[str, Any]  # lineage: where the prompt came from


def up_to_last_user(messages: Messages) -> Messages | None:
    """The conversation up to and with its last user turn; None when it has none."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    return None if last is None else [{"role": m["role"], "content": m["content"]} for m in messages[:last + 1]]


def _record_prompt(record: dict[str, Any], kind: str) -> Messages | None:
    if kind == "sft":
        return up_to_last_user(record.get("messages", []))
    prompt = record.get("prompt")
    return up_to_last_user(prompt) if isinstance(prompt, list) else None


def dataset_prompts(datasets: DatasetStore, pinned: dict[str, Any], split: str) -> list[Prompt]:
    """The prompts of the pinned version (`{"name", "version", "id", "kind"}`), `split` "train", "eval" or both."""
    try:
        record = datasets.get(str(pinned["name"]), int(pinned["version"]))
    except DatasetError as exc:
        raise JobFailed(f"prompt dataset: {exc}") from exc
    if record.id != pinned["id"]:
        raise JobFailed(f"dataset {record.name} v{record.version} is not the version this job was given "
                        f"({pinned['id'][:12]}); submit the job again")
    prompts = []
    for part in ("train", "eval") if split == "both" else (split,):
        for index, row in enumerate(datasets.load_records(record, part)):  # type: ignore[arg-type]
            messages = _record_prompt(row, record.report.kind)
            if messages is not None:
                prompts.append(Prompt(f"dataset:{part}:{index}", messages, {
                    "source": "dataset", "dataset": record.name, "version": record.version, "dataset_id": record.id,
                    "split": part, "record": index}))
    return prompts


def captured_prompts(datasets: DatasetStore, filters: dict[str, Any]) -> list[Prompt]:
    """The captured requests the review queue's `filters` select, oldest first."""
    store = datasets.store
    prompts = []
    for summary in reversed(list_captures(store, CaptureFilter.model_validate(filters))):
        detail = get_capture(store, summary.response_id)
        messages = up_to_last_user(as_dicts(detail.item.messages))
        if messages is not None:
            prompts.append(Prompt(f"capture:{summary.response_id}", messages, {
                "source": "capture", "capture_id": summary.response_id, "deployment": summary.deployment,
                "created_at": summary.created_at}))
    return prompts


def prompt_set(datasets: DatasetStore, resolved: dict[str, Any], split: str) -> list[Prompt]:
    """Every prompt of the job, each asked once."""
    found = []
    if resolved.get("dataset"):
        found += dataset_prompts(datasets, resolved["dataset"], split)
    if resolved.get("capture_filter") is not None:
        found += captured_prompts(datasets, resolved["capture_filter"])
    seen: set[str] = set()
    unique = []
    for prompt in found:
        identity = json.dumps(prompt.messages, sort_keys=True, ensure_ascii=False)
        if identity not in seen:
            seen.add(identity)
            unique.append(prompt)
    return unique
