"""The job submit form: one form per job kind, built from what the daemon says of the kinds
(`GET /api/v1/job-kinds`, laid out by `tui.widgets.jobform`); a fine-tune's overrides start from the hardware
profile, and the planner's verdict for the chosen base model is shown before anything is queued."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static

from appliance.client import ApiError, AsyncDaemonClient
from tui.widgets.jobform import form_widgets, read_params
from tui.widgets.modals import MODAL_CSS

Json = dict[str, Any]


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

    def __init__(self, api: AsyncDaemonClient, kinds: list[Json], models: list[Json], datasets: list[Json],
                 training: Json) -> None:
        """`kinds` as `GET /api/v1/job-kinds` gives them (the first is the default); `training`: the selected
        profile's training table."""
        super().__init__()
        self.api, self.training = api, training
        self.kinds = {k["name"]: k for k in kinds}
        self.kind = kinds[0]["name"]
        self.models = {m["name"]: m for m in models}
        self.choices = {"models": list(self.models), "datasets": sorted({d["name"] for d in datasets}),
                        "adapters": [n for n, m in self.models.items() if m.get("format") == "peft"]}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Submit a job", classes="title")
            yield Select([(name, name) for name in self.kinds], value=self.kind, allow_blank=False, id="type")
            with VerticalScroll(id="form"), Vertical(id="fields"):
                yield from form_widgets(self.kinds[self.kind], self.choices, self.training)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Submit", variant="primary", id="submit")

    @on(Select.Changed, "#type")
    async def type_changed(self, event: Select.Changed) -> None:
        if event.select.is_blank() or str(event.value) == self.kind:
            return
        self.kind = str(event.value)
        fields = self.query_one("#fields", Vertical)
        await fields.remove_children()
        await fields.mount_all(form_widgets(self.kinds[self.kind], self.choices, self.training))

    @on(Select.Changed)
    def field_changed(self, event: Select.Changed) -> None:
        planned = [f["name"] for f in self.kinds[self.kind]["fields"] if f.get("plan")]
        if event.select.id not in [f"field-{name}" for name in planned]:
            return
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
        verdicts = self.query("#verdict")
        if verdicts:
            verdicts.first(Static).update(event.text)

    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        try:
            params = read_params(self.query_one("#fields"), self.kinds[self.kind])
        except ValueError as exc:
            self.notify(str(exc), title="Check the form", severity="warning")
            return
        self.dismiss((self.kind, params))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
