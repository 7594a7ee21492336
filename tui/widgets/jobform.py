"""A job kind's form, built from what `GET /api/v1/job-kinds` says of its fields, and the params read back.

Layout: select fields (models, datasets) two to a row, other fields one per line, an object field's entries
three to a row (a fine-tune's overrides, prefilled from the profile), then the kind's note, which the planner's
verdict replaces when a field asks for it. Widget ids are `field-<name>` and `ov-<key>` for entries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

Json = dict[str, Any]
ENTRIES_PER_ROW = 3
SELECTS_PER_ROW = 2


def _label(field: Json) -> str:
    return field["label"] if field["required"] else f"{field['label']} (optional)"


def _is_select(field: Json) -> bool:
    return bool(field.get("source") or (field.get("choices") and field["type"] != "list"))


def _input(field: Json, choices: dict[str, list[str]]) -> Widget:
    wid = f"field-{field['name']}"
    if field.get("source"):
        return Select([(n, n) for n in choices.get(field["source"], [])], id=wid)
    if _is_select(field):
        options = [(c, c) for c in field["choices"]]
        if field.get("default") is None:
            return Select(options, allow_blank=not field["required"], id=wid)
        return Select(options, value=field["default"], allow_blank=not field["required"], id=wid)
    if field["type"] == "object":
        return Input("{}", id=wid)
    placeholder = field.get("placeholder") or ""
    if not placeholder and field["type"] == "list" and field.get("choices"):
        placeholder = "comma-separated: " + ", ".join(field["choices"])
    elif not placeholder and field.get("default") is not None:
        placeholder = f"default: {field['default']}"
    return Input(placeholder=placeholder, id=wid)


def _entries(field: Json, training: Json) -> Iterator[Widget]:
    entries = field["entries"]
    start = training if field.get("prefill") == "profile.training" else {}
    for i in range(0, len(entries), ENTRIES_PER_ROW):
        cells = []
        for entry in entries[i:i + ENTRIES_PER_ROW]:
            value = start.get(entry["name"])
            cells.append(Vertical(Label(entry["label"]), Input("" if value is None else str(value),
                                                                id=f"ov-{entry['name']}",
                                                                placeholder=field.get("placeholder") or "")))
        yield Horizontal(*cells, classes="row")


def form_widgets(kind: Json, choices: dict[str, list[str]], training: Json) -> list[Widget]:
    """The widgets of `kind`'s form. `choices`: names per select source; `training`: the profile's table."""
    widgets: list[Widget] = []
    selects: list[Widget] = []

    def flush() -> None:
        for i in range(0, len(selects), SELECTS_PER_ROW):
            widgets.append(Horizontal(*selects[i:i + SELECTS_PER_ROW], classes="row"))
        selects.clear()

    for field in (f for f in kind["fields"] if f.get("in_form", True)):
        if field.get("source"):
            selects.append(Vertical(Label(_label(field)), _input(field, choices)))
            continue
        flush()
        if field.get("entries"):
            widgets.extend(_entries(field, training))
        elif field["type"] == "boolean":
            widgets.append(Checkbox(field["label"], bool(field.get("default")), id=f"field-{field['name']}"))
        else:
            label = _label(field) + (" (JSON object)" if field["type"] == "object" else "")
            widgets.extend([Label(label), _input(field, choices)])
    flush()
    if kind.get("note") or any(f.get("plan") for f in kind["fields"]):
        widgets.append(Static(kind.get("note", ""), id="verdict", classes="hint"))
    return widgets


def _typed(label: str, type_: str, raw: str) -> Any:
    try:
        if type_ == "integer":
            return int(raw)
        if type_ == "number":
            return float(raw)
    except ValueError:
        raise ValueError(f"{label}: {raw!r} is not a number") from None
    if type_ == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    if type_ == "object":
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"{label}: give a JSON object")
        return value
    return raw


def _raw(form: DOMNode, selector: str) -> Any:
    widget = form.query_one(selector)
    if isinstance(widget, Select):
        return None if widget.is_blank() else widget.value
    if isinstance(widget, Checkbox):
        return widget.value
    assert isinstance(widget, Input)
    return widget.value.strip() or None


def read_params(form: DOMNode, kind: Json) -> Json:
    """The params the form holds; raises ValueError with a message for the operator."""
    params: Json = {}
    missing = []
    for field in (f for f in kind["fields"] if f.get("in_form", True)):
        if field.get("entries"):
            values = {e["name"]: _raw(form, f"#ov-{e['name']}") for e in field["entries"]}
            params[field["name"]] = {e["name"]: _typed(e["label"], e["type"], values[e["name"]])
                                     for e in field["entries"] if values[e["name"]] is not None}
            continue
        raw = _raw(form, f"#field-{field['name']}")
        if raw is None:
            missing += [field["label"]] if field["required"] else []
        elif isinstance(raw, str) and not _is_select(field):
            params[field["name"]] = _typed(field["label"], field["type"], raw)
        else:
            params[field["name"]] = raw
    if missing:
        raise ValueError(f"required: {', '.join(missing)}")
    return params
