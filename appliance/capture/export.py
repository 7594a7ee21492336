"""Accepted and edited items as dataset rows in three shapes (dataset kinds), each row with its lineage.

What each item gives:
- prompt: the captured request's messages; for an edited item, its conversation up to its last user turn;
- original: the captured answer;
- better: for an edited item, the edited answer when it differs from the original (the reviewer's edit is the
  last word); otherwise the feedback's correction;
- label: the feedback's thumbs (up or 4-5 true, down or 1-2 false; 3 and no rating: none).

Shapes:
- `sft` `{"messages"}`: the edited conversation; else the prompt with the correction; else the prompt with the
  original when it was not rated down (accepted as it is). A rated-down answer with nothing better teaches SFT
  nothing: it is skipped here and goes to the other two shapes.
- `preference` `{"prompt", "chosen", "rejected"}`: chosen the better answer, rejected the original. A rated-down
  answer with nothing better is paired with the good answer (better, or up-rated original) of another selected
  item with the same prompt when there is one. An up-rated answer alone makes no pair (nothing was rejected).
- `kto` `{"prompt", "completion", "label"}`: the original with its thumbs label, and the better answer labelled
  true. Unrated or neutral originals give no row (a correction alone does not label the original).

Every row carries `metadata`, which the dataset import stores with the record: the captured item (`capture_id`,
deployment, model, time), its feedback (the correction's text is in the row itself), its review, and which
answer each side is (`original`, `correction`, `edit`); a cross-item pair also names `chosen_capture_id`.
Rows are checked as the import checks them (`datasets.kinds.parse`); an item the import would refuse is listed
in `skipped` with the reason and not written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from appliance.capture.models import CaptureDetail, as_dicts
from appliance.capture.rows import load_detail
from appliance.datasets.errors import RecordDefect
from appliance.datasets.kinds import parse
from appliance.errors import BadRequest
from appliance.names import NAME, NAME_RULE
from appliance.state.durable import write_atomic
from appliance.state.store import StateStore

ExportKind = Literal["sft", "preference", "kto"]
Msgs = list[dict[str, str]]
Row = dict[str, Any]


class ExportSelection(BaseModel):
    """Which accepted or edited items to export (all of them by default)."""

    deployment: str | None = None
    since: float | None = None
    until: float | None = None
    response_ids: list[str] | None = Field(None, description="Only these items")


class Skipped(BaseModel):
    response_id: str
    reason: str


class ExportResult(BaseModel):
    path: str  # the JSONL file: import it as a dataset of `kind`
    kind: ExportKind
    rows: int
    items: int  # captured items behind the rows
    skipped: list[Skipped]


class NothingToExport(BadRequest):
    code = "nothing_to_export"


@dataclass(frozen=True)
class Source:
    id: str
    prompt: Msgs
    original: Msgs
    better: Msgs | None
    better_from: str  # "edit" or "correction" (when `better`)
    label: bool | None
    edited: Msgs | None
    lineage: dict[str, Any]


def _split(messages: Msgs) -> tuple[Msgs, Msgs]:
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
    return messages[:last_user + 1], messages[last_user + 1:]


def source_of(detail: CaptureDetail) -> Source:
    item, feedback, review = detail.item, detail.feedback, detail.review
    original = [{"role": "assistant", "content": item.answer}]
    prompt, better, better_from = as_dicts(item.messages), None, ""
    edited = as_dicts(review.messages) if review.state == "edited" and review.messages else None
    if edited is not None:
        prompt, answer = _split(edited)
        better, better_from = (answer, "edit") if answer != original else (None, "")
    elif feedback is not None and feedback.correction is not None:
        better, better_from = as_dicts(feedback.correction), "correction"
    lineage: dict[str, Any] = {
        "source": "capture", "capture_id": item.response_id, "deployment": item.deployment,
        "model_id": item.model_id, "model_name": item.model_name, "captured_at": item.created_at,
        "feedback": None if feedback is None else {
            "rating": feedback.rating, "score": feedback.score, "label": feedback.label,
            "corrected": feedback.correction is not None, "comment": feedback.comment, "tags": feedback.tags,
            "at": feedback.created_at},
        "review": {"state": review.state, "reviewer": review.reviewer, "note": review.note,
                   "decided_at": review.decided_at},
    }
    return Source(item.response_id, prompt, original, better, better_from,
                  None if feedback is None else feedback.label, edited, lineage)


def select(store: StateStore, selection: ExportSelection | None = None) -> list[Source]:
    """The accepted and edited items `selection` names, oldest first."""
    selection = selection or ExportSelection()
    sql = ("SELECT c.response_id FROM captures c JOIN capture_reviews r ON r.response_id = c.response_id "
           "WHERE r.state IN ('accepted', 'edited')")
    params: list[Any] = []
    for condition, value in (("c.deployment = ?", selection.deployment), ("c.created_at >= ?", selection.since),
                             ("c.created_at < ?", selection.until)):
        if value is not None:
            sql += f" AND {condition}"
            params.append(value)
    ids = [str(r["response_id"]) for r in store.query(sql + " ORDER BY c.created_at, c.response_id", tuple(params))]
    if selection.response_ids is not None:
        wanted = set(selection.response_ids)
        ids = [i for i in ids if i in wanted]
    details = (load_detail(store, i) for i in ids)
    return [source_of(d) for d in details if d is not None]


class _Rows:
    """Rows of one kind, each checked as the import will check it; refusals go to `skipped`."""

    def __init__(self, kind: ExportKind) -> None:
        self.kind = kind
        self.rows: list[Row] = []
        self.skipped: list[Skipped] = []
        self.items: set[str] = set()

    def add(self, source: Source, row: Row, **lineage: Any) -> None:
        row["metadata"] = {**source.lineage, **lineage}
        try:
            parse(self.kind, row)
        except RecordDefect as defect:
            self.skip(source, f"the dataset import would refuse it: {defect}")
            return
        self.rows.append(row)
        self.items.update(i for i in (source.id, lineage.get("chosen_capture_id")) if i)

    def skip(self, source: Source, reason: str) -> None:
        self.skipped.append(Skipped(response_id=source.id, reason=reason))


def sft_rows(sources: list[Source]) -> _Rows:
    out = _Rows("sft")
    for s in sources:
        if s.edited is not None:
            out.add(s, {"messages": s.edited}, answer_from="edit")
        elif s.better is not None:
            out.add(s, {"messages": [*s.prompt, *s.better]}, answer_from=s.better_from)
        elif s.label is not False:
            out.add(s, {"messages": [*s.prompt, *s.original]}, answer_from="original")
        else:
            out.skip(s, "rated down with no correction or edit: not an SFT example (export kto or preference)")
    return out


def preference_rows(sources: list[Source]) -> _Rows:
    out = _Rows("preference")
    good: dict[str, list[tuple[Source, Msgs, str]]] = {}
    for s in sources:
        answer, answer_from = (s.better, s.better_from) if s.better is not None else (s.original, "original")
        if s.better is not None or s.label is True:
            good.setdefault(_key(s.prompt), []).append((s, answer, answer_from))
    alone: list[Source] = []
    for s in sources:
        if s.better is not None:
            out.add(s, {"prompt": s.prompt, "chosen": s.better, "rejected": s.original},
                    chosen_from=s.better_from, rejected_from="original")
        elif s.label is False:
            partner = next((g for g in good.get(_key(s.prompt), []) if g[0].id != s.id and g[1] != s.original),
                           None)
            if partner is None:
                out.skip(s, "rated down, and no better answer to the same prompt to pair it with")
                continue
            out.add(s, {"prompt": s.prompt, "chosen": partner[1], "rejected": s.original},
                    chosen_from=partner[2], rejected_from="original", chosen_capture_id=partner[0].id)
        else:
            alone.append(s)
    for s in alone:
        if s.id not in out.items:
            out.skip(s, "no rejected answer: not rated down and no correction or edit")
    return out


def kto_rows(sources: list[Source]) -> _Rows:
    out = _Rows("kto")
    for s in sources:
        if s.label is None and s.better is None:
            out.skip(s, "no thumbs rating and no correction or edit: no KTO label")
            continue
        if s.label is not None:
            out.add(s, {"prompt": s.prompt, "completion": s.original, "label": s.label}, answer_from="original")
        if s.better is not None:
            out.add(s, {"prompt": s.prompt, "completion": s.better, "label": True}, answer_from=s.better_from)
    return out


BUILDERS = {"sft": sft_rows, "preference": preference_rows, "kto": kto_rows}


def _key(prompt: Msgs) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def write_export(store: StateStore, kind: ExportKind, directory: Path, name: str,
                 selection: ExportSelection | None = None) -> ExportResult:
    """Write the selected accepted/edited items as `<directory>/<name>.jsonl` (whole or not at all: temp file,
    fsync, rename) for a dataset import of `kind`.

    Raises:
        BadRequest: an unknown kind or a bad name; NothingToExport (400): no row, with the first reasons.
    """
    if kind not in BUILDERS:
        raise BadRequest(f"unknown export kind {kind!r}; use one of {', '.join(BUILDERS)}", param="kind")
    if not NAME.match(name):
        raise BadRequest(f"invalid export name {name!r}: {NAME_RULE}", param="name")
    built = BUILDERS[kind](select(store, selection))
    if not built.rows:
        reasons = "; ".join(f"{s.response_id}: {s.reason}" for s in built.skipped[:3]) or "no accepted items"
        raise NothingToExport(f"nothing to export as {kind}: {reasons}")
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in built.rows).encode()
    path = directory / f"{name}.jsonl"
    write_atomic(path, data)
    return ExportResult(path=str(path), kind=kind, rows=len(built.rows), items=len(built.items),
                        skipped=built.skipped)
