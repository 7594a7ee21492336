"""What a job kind is: its `params` model, its pre-flight, its handler and how a form shows it, in one frozen
declaration (`JobKind`); and the registry of them (`JobKinds`).

Light on purpose: the CLI imports every kind to build its options, so a kind module imports pydantic and the
appliance's small shared modules at the top, and the domain (registry, planner, export) inside its pre-flight.
The handler is a "module:function" string the worker imports; torch and transformers never load in the daemon.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from appliance.errors import BadRequest
from appliance.jobs.events import Emitter
from appliance.validation import where_and_why

if TYPE_CHECKING:
    from appliance.core import Appliance

P = TypeVar("P", bound=BaseModel)
Handler = Callable[[dict[str, Any], Emitter], dict[str, Any]]
Source = Literal["models", "adapters", "datasets"]


def form(*, label: str | None = None, placeholder: str | None = None, source: Source | None = None,
         cli: str | None = None, path: bool = False, in_form: bool = True, plan: bool = False,
         entries: dict[str, str] | None = None, prefill: Literal["profile.training"] | None = None
         ) -> dict[str, Any]:
    """How the CLI and the TUI show one params field, as the field's `json_schema_extra` (key `x-form`). The
    rest (type, required, choices, default, help) comes from the field itself (`kinds.form.fields`).

    Args:
        label: the form's label (default: the field name in words).
        placeholder: the empty input's hint.
        source: offer the names of these registry records or datasets (a select in the TUI).
        cli: the CLI option (default `--field-name`).
        path: a file on the appliance: the CLI makes a relative path absolute.
        in_form: False keeps the field out of the TUI form (the CLI and the API still take it).
        plan: the planner's verdict for the model chosen here is shown under the form.
        entries: an object field's keys the form shows one input each, with their labels.
        prefill: where those inputs start from (the selected profile's training table).
    """
    hints = {"label": label, "placeholder": placeholder, "source": source, "cli": cli, "path": path or None,
             "in_form": None if in_form else False, "plan": plan or None, "prefill": prefill,
             # pairs, not a dict: the JSON schema sorts an object's keys, and the entries keep their order
             "entries": [[key, text] for key, text in entries.items()] if entries else None}
    return {"x-form": {k: v for k, v in hints.items() if v is not None}}


def validated(model: type[P], params: dict[str, Any]) -> P:
    """`params` as the kind's model; the first problem as a 400 naming `params.<field>`."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        where, why = where_and_why(exc)
        param = f"params.{where}" if where else "params"
        raise BadRequest(f"{param}: {why}", param=param) from exc


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """One kind of job. `name` is the job's `type` in the API, the store and the worker's spec."""

    name: str
    summary: str  # one line for menus and help texts
    params: type[P]  # the `params` as submitted
    handler: str  # "module:function(spec, emitter) -> result", imported in the worker only
    # Checks at submit time and gives the params to store (with what it resolved); raises an ApplianceError
    # (BadRequest, NotFound, Conflict, DoesNotFit) naming the param. None: the validated params as they are.
    preflight: Callable[[Appliance, P], dict[str, Any]] | None = None
    trains: bool = False  # profiles that cannot serve while training pause serving around it
    submit_via_cli: bool = True  # False when the kind has its own command (`datasets import`)
    note: str = ""  # a line under the form (the TUI replaces it with the planner's verdict when there is one)

    def check(self, appliance: Appliance, params: dict[str, Any]) -> dict[str, Any]:
        """The params to store with a job of this kind: validated, then pre-flight."""
        job = validated(self.params, params)
        return job.model_dump() if self.preflight is None else self.preflight(appliance, job)

    def load_handler(self) -> Handler:
        module, _, function = self.handler.partition(":")
        handler: Handler = getattr(importlib.import_module(module), function)
        return handler


class JobKinds:
    """The registered kinds, in the order menus list them."""

    def __init__(self, kinds: Iterable[JobKind[Any]]) -> None:
        self._kinds: dict[str, JobKind[Any]] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"job kind {kind.name!r} registered twice")
            if not kind.handler.partition(":")[2]:
                raise ValueError(f"job kind {kind.name!r}: handler {kind.handler!r} is not 'module:function'")
            self._kinds[kind.name] = kind

    @classmethod
    def load(cls, package: str, modules: Iterable[str]) -> JobKinds:
        """The `KIND` of each module of `package`, in order."""
        kinds = []
        for name in modules:
            kind = getattr(importlib.import_module(f"{package}.{name}"), "KIND", None)
            if not isinstance(kind, JobKind):
                raise TypeError(f"{package}.{name} defines no KIND (a JobKind)")
            kinds.append(kind)
        return cls(kinds)

    def __iter__(self) -> Iterator[JobKind[Any]]:
        return iter(self._kinds.values())

    def names(self) -> list[str]:
        return list(self._kinds)

    def find(self, name: str) -> JobKind[Any] | None:
        return self._kinds.get(name)

    def get(self, name: str) -> JobKind[Any]:
        """Raises BadRequest naming the known kinds."""
        kind = self._kinds.get(name)
        if kind is None:
            raise BadRequest(self.unknown(name), param="type")
        return kind

    def unknown(self, name: str) -> str:
        return f"unknown job type {name!r}; known: {', '.join(self._kinds)}"
