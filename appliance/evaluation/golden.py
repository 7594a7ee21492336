"""Golden sets: prompts with expected answers, each scored by exact match, containment, a regex or ROUGE-L.

A golden file is JSONL, one item per line:
  {"prompt": "...", "expected": "...", "scorer": "contains", "kind": "task"}
`scorer` is exact | contains | regex | rougeL (default contains); `threshold` (rougeL, default 0.5);
`kind` is task (what the fine-tune should teach) or general (what the base already knows: catches forgetting).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from appliance.datasets.paths import checked_source
from appliance.errors import ApplianceError
from appliance.validation import first_problem

Scorer = Literal["exact", "contains", "regex", "rougeL"]


class GoldenError(ApplianceError):
    """A golden file that cannot be used; the message names the line."""


class GoldenItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1)
    expected: str = Field(..., min_length=1)
    scorer: Scorer = "contains"
    threshold: float = Field(0.5, gt=0.0, le=1.0)
    kind: Literal["task", "general"] = "task"
    system: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The prompt as a chat: what every model under evaluation is asked (transformers or a backend)."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.prompt}]

    @model_validator(mode="after")
    def _regex_compiles(self) -> GoldenItem:
        if self.scorer == "regex":
            try:
                re.compile(self.expected)
            except re.error as exc:
                raise ValueError(f"expected is not a valid regex: {exc}") from exc
        return self


class ItemResult(BaseModel):
    prompt: str
    expected: str
    scorer: Scorer
    kind: str
    answer: str
    score: float
    passed: bool


class GoldenReport(BaseModel):
    items: list[ItemResult]
    task_passed: int
    task_total: int
    general_passed: int
    general_total: int

    @property
    def score(self) -> float:
        """Fraction of all items passed (the eval gate compares this)."""
        total = self.task_total + self.general_total
        return (self.task_passed + self.general_passed) / total if total else 0.0

    def summary(self) -> str:
        return (f"task {self.task_passed}/{self.task_total}, general {self.general_passed}/{self.general_total}")


def builtin_general() -> list[GoldenItem]:
    """General prompts the starter model answers correctly (checked with its dequantized weights)."""
    text = resources.files("appliance.evaluation").joinpath("general.jsonl").read_text()
    return parse_golden(text, "built-in general set")


def parse_golden(text: str, source: str) -> list[GoldenItem]:
    items: list[GoldenItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(GoldenItem.model_validate(json.loads(line)))
        except ValueError as exc:  # JSONDecodeError and ValidationError are both ValueErrors
            raise GoldenError(f"{source} line {number}: {_reason(exc)}") from exc
    if not items:
        raise GoldenError(f"{source}: no golden items")
    return items


def _reason(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return first_problem(exc, "item")
    return f"invalid JSON: {exc}"


def load_golden(path: Path) -> list[GoldenItem]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"{path}: cannot read: {exc}") from exc
    return parse_golden(text, path.name)


def golden_set(path: str | None, import_roots: list[Path]) -> tuple[list[GoldenItem], Path | None]:
    """The golden file at `path` (inside an import root) followed by the built-in general set, and the file's
    real path; the built-in set alone without `path`.

    Raises:
        DatasetError: the path is not an allowed file. GoldenError: its content is not a golden set.
    """
    if path is None:
        return builtin_general(), None
    source = checked_source(Path(path), [root.resolve() for root in import_roots])
    return load_golden(source) + builtin_general(), source


def golden_digest(items: list[GoldenItem]) -> str:
    blob = json.dumps([i.model_dump() for i in items], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _normalize(text: str) -> str:
    return " ".join(text.casefold().split())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens (longest common subsequence)."""
    cand, ref = _normalize(candidate).split(), _normalize(reference).split()
    if not cand or not ref:
        return 0.0
    previous = [0] * (len(ref) + 1)
    for word in cand:
        current = [0]
        for j, ref_word in enumerate(ref, start=1):
            current.append(previous[j - 1] + 1 if word == ref_word else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def score_item(item: GoldenItem, answer: str) -> ItemResult:
    if item.scorer == "exact":
        score = float(_normalize(answer) == _normalize(item.expected))
    elif item.scorer == "contains":
        score = float(_normalize(item.expected) in _normalize(answer))
    elif item.scorer == "regex":
        score = float(re.search(item.expected, answer) is not None)
    else:
        score = rouge_l(answer, item.expected)
    passed = score >= item.threshold if item.scorer == "rougeL" else score == 1.0
    return ItemResult(prompt=item.prompt, expected=item.expected, scorer=item.scorer, kind=item.kind,
                      answer=answer, score=round(score, 4), passed=passed)


def make_report(items: list[GoldenItem], answers: list[str]) -> GoldenReport:
    results = [score_item(item, answer) for item, answer in zip(items, answers, strict=True)]
    task = [r for r in results if r.kind == "task"]
    general = [r for r in results if r.kind == "general"]
    return GoldenReport(items=results, task_passed=sum(r.passed for r in task), task_total=len(task),
                        general_passed=sum(r.passed for r in general), general_total=len(general))


def forgotten(before: GoldenReport, after: GoldenReport) -> list[str]:
    """General prompts the base answered right and the candidate no longer does."""
    return [b.prompt for b, a in zip(before.items, after.items, strict=True)
            if b.kind == "general" and b.passed and not a.passed]
