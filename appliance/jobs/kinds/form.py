"""How a kind is shown, derived from its params model: each field's type, whether it is required, its choices,
default and help come from the model's JSON schema; the label, select source and CLI option from the field's
`x-form` hints (`base.form`). `GET /api/v1/job-kinds` serves `describe`; the CLI builds its options from
`fields`; the TUI builds its form from the served JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from appliance.jobs.kinds.base import JobKind, Source

FieldType = Literal["string", "integer", "number", "boolean", "list", "object"]
_TYPES: dict[str, FieldType] = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
                                "array": "list", "object": "object"}


class FormEntry(BaseModel):
    """One key of an object field that the form shows as its own input (a fine-tune override)."""

    name: str
    label: str
    type: FieldType
    help: str = ""


class FormField(BaseModel):
    """One params field as the CLI and the TUI show it."""

    name: str
    label: str
    type: FieldType
    required: bool
    help: str = ""
    choices: list[str] | None = Field(None, description="The values allowed (of each item, for a list)")
    default: Any = None
    placeholder: str = ""
    source: Source | None = Field(None, description="Offer the names of these records (a select)")
    cli: str = Field(..., description="The CLI option of `jobs submit`")
    path: bool = Field(False, description="A file on the appliance (the CLI makes it absolute)")
    in_form: bool = Field(True, description="Shown in the TUI form")
    plan: bool = Field(False, description="The planner's verdict for the model chosen here is shown")
    entries: list[FormEntry] = Field(default_factory=list, description="Keys of an object shown one input each")
    prefill: Literal["profile.training"] | None = Field(None, description="Where the entries start from")


class KindInfo(BaseModel):
    """A job kind as `GET /api/v1/job-kinds` gives it."""

    name: str
    summary: str
    trains: bool = Field(..., description="Serving pauses while it runs on profiles that cannot do both")
    submit_via_cli: bool
    note: str = ""
    params_schema: dict[str, Any] = Field(..., description="JSON schema of the job's `params`")
    fields: list[FormField]


def _type_of(prop: dict[str, Any]) -> FieldType:
    """The JSON type of a property; an optional one (`anyOf` with null) by its other branch."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") in _TYPES:
            return _TYPES[branch["type"]]
    return "string"


def _choices(prop: dict[str, Any]) -> list[str] | None:
    for branch in prop.get("anyOf", [prop]):
        enum = branch.get("enum") or branch.get("items", {}).get("enum")
        if enum:
            return [str(v) for v in enum]
    return None


def _entries(prop: dict[str, Any], labels: list[list[str]]) -> list[FormEntry]:
    keys = prop.get("properties", {})
    return [FormEntry(name=name, label=label, type=_type_of(keys.get(name, {})),
                      help=str(keys.get(name, {}).get("description", ""))) for name, label in labels]


_FIELDS: dict[type[BaseModel], tuple[FormField, ...]] = {}


def fields(model: type[BaseModel]) -> tuple[FormField, ...]:
    """The fields of a params model, in declaration order (worked out once per model)."""
    if model not in _FIELDS:
        _FIELDS[model] = _derive(model)
    return _FIELDS[model]


def _derive(model: type[BaseModel]) -> tuple[FormField, ...]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        hints: dict[str, Any] = prop.get("x-form", {})
        out.append(FormField(
            name=name, label=hints.get("label") or name.replace("_", " ").capitalize(), type=_type_of(prop),
            required=name in required, help=str(prop.get("description", "")), choices=_choices(prop),
            default=prop.get("default"), placeholder=hints.get("placeholder", ""), source=hints.get("source"),
            cli=hints.get("cli") or "--" + name.replace("_", "-"), path=hints.get("path", False),
            in_form=hints.get("in_form", True), plan=hints.get("plan", False),
            entries=_entries(prop, hints.get("entries", [])), prefill=hints.get("prefill")))
    return tuple(out)


def describe(kind: JobKind[Any]) -> KindInfo:
    return KindInfo(name=kind.name, summary=kind.summary, trains=kind.trains, submit_via_cli=kind.submit_via_cli,
                    note=kind.note, params_schema=kind.params.model_json_schema(), fields=list(fields(kind.params)))
