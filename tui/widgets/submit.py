"""The job submit form: fields follow the job type; fine-tune fields start from the hardware profile, and
the planner's verdict for the chosen base model is shown before anything is queued."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from appliance.client import ApiError, AsyncDaemonClient
from tui.widgets.modals import MODAL_CSS

Json = dict[str, Any]
# Override fields shown in the form, typed; the rest keep the profile's values.
OVERRIDES: tuple[tuple[str, str, type], ...] = (
    ("max_steps", "max steps", int),
    ("epochs", "epochs", float),
    ("learning_rate", "learning rate", float),
    ("batch_size", "batch size", int),
    ("lora_r", "LoRA rank", int),
    ("max_seq_length", "max sequence length", int),
)


class SubmitJobModal(ModalScreen[tuple[str, Json] | None]):
    """Returns (type, params) or None."""

    DEFAULT_CSS = MODAL_CSS.format(name="SubmitJobModal") + """
    SubmitJobModal > Vertical { width: 90; }
    SubmitJobModal #form { height: auto; max-height: 24; }
    SubmitJobModal .row { height: auto; }
    SubmitJobModal .row > Vertical { width: 1fr; height: auto; }
    SubmitJobModal #verdict { margin: 1 0 0 0; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    class Planned(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, api: AsyncDaemonClient, job_types: list[str], models: list[Json], datasets: list[Json],
                 training: Json) -> None:
        super().__init__()
        self.api, self.job_types, self.training = api, job_types, training
        self.models = {m["name"]: m for m in models}
        self.datasets = sorted({d["name"] for d in datasets})

    def compose(self) -> ComposeResult:
        default = "finetune" if "finetune" in self.job_types else self.job_types[0]
        with Vertical():
            yield Static("Submit a job", classes="title")
            yield Select([(t, t) for t in self.job_types], value=default, allow_blank=False, id="type")
            with VerticalScroll(id="form"):
                with Vertical(id="finetune-fields"):
                    with Horizontal(classes="row"):
                        with Vertical():
                            yield Label("Base model")
                            yield Select([(n, n) for n in self.models], id="base_model")
                        with Vertical():
                            yield Label("Dataset")
                            yield Select([(n, n) for n in self.datasets], id="dataset")
                    yield Label("Adapter name (optional)")
                    yield Input(placeholder="default: <dataset>-<job>", id="adapter_name")
                    for i in range(0, len(OVERRIDES), 3):
                        with Horizontal(classes="row"):
                            for name, label, _ in OVERRIDES[i:i + 3]:
                                with Vertical():
                                    yield Label(label)
                                    value = self.training.get(name)
                                    yield Input("" if value is None else str(value), id=f"ov-{name}",
                                                placeholder="profile default")
                    yield Static("Profile defaults are filled in.", id="verdict", classes="hint")
                with Vertical(id="import-fields"):
                    yield Label("Path on the appliance")
                    yield Input(placeholder="/var/lib/slm-appliance/imports/data.jsonl", id="path")
                    yield Label("Dataset name")
                    yield Input(id="name")
                with Vertical(id="json-fields"):
                    yield Label("Params (JSON object)")
                    yield Input("{}", id="params-json")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Submit", variant="primary", id="submit")

    def on_mount(self) -> None:
        self._show_fields(str(self.query_one("#type", Select).value))

    @on(Select.Changed, "#type")
    def type_changed(self, event: Select.Changed) -> None:
        self._show_fields(str(event.value))

    def _show_fields(self, job_type: str) -> None:
        self.query_one("#finetune-fields").display = job_type == "finetune"
        self.query_one("#import-fields").display = job_type == "dataset-import"
        self.query_one("#json-fields").display = job_type not in ("finetune", "dataset-import")

    @on(Select.Changed, "#base_model")
    def base_changed(self, event: Select.Changed) -> None:
        model = self.models.get(str(event.value))
        if model and model.get("params"):
            self._plan(str(int(model["params"])))

    @work(exclusive=True, exit_on_error=False)
    async def _plan(self, params: str) -> None:
        try:
            plan = await self.api.plan(params)
        except ApiError as exc:
            self.post_message(self.Planned(f"[yellow]planner: {exc.message}[/]"))
            return
        training = plan["training"]
        colour = "green" if plan.get("can_train") else "red"
        notes = "".join(f"\n{n}" for n in plan.get("notes", []))
        self.post_message(self.Planned(
            f"[b]{plan['profile']}[/b] trains with [b]{plan['training_method']}[/b]: "
            f"[{colour}]{training['message']}[/]{notes}"))

    @on(Planned)
    def planned(self, event: Planned) -> None:
        self.query_one("#verdict", Static).update(event.text)

    def _value(self, selector: str) -> Any:
        widget = self.query_one(selector)
        if isinstance(widget, Select):
            return None if widget.value is Select.BLANK else widget.value
        assert isinstance(widget, Input)
        return widget.value.strip() or None

    def _params(self, job_type: str) -> Json:
        """The job's params; raises ValueError with a message for the operator."""
        if job_type == "dataset-import":
            if not self._value("#path") or not self._value("#name"):
                raise ValueError("path and dataset name are required")
            return {"path": self._value("#path"), "name": self._value("#name")}
        if job_type != "finetune":
            raw: Any = json.loads(self._value("#params-json") or "{}")
            if not isinstance(raw, dict):
                raise ValueError("params must be a JSON object")
            return raw
        if not self._value("#base_model") or not self._value("#dataset"):
            raise ValueError("choose a base model and a dataset")
        overrides: Json = {}
        for name, label, kind in OVERRIDES:
            raw = self._value(f"#ov-{name}")
            if raw is not None:
                try:
                    overrides[name] = kind(raw)
                except ValueError:
                    raise ValueError(f"{label}: {raw!r} is not a number") from None
        params: Json = {"base_model": self._value("#base_model"), "dataset": self._value("#dataset"),
                        "overrides": overrides}
        if self._value("#adapter_name"):
            params["adapter_name"] = self._value("#adapter_name")
        return params

    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        job_type = str(self.query_one("#type", Select).value)
        try:
            params = self._params(job_type)
        except ValueError as exc:
            self.notify(str(exc), title="Check the form", severity="warning")
            return
        self.dismiss((job_type, params))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
