"""Modal dialogs: a confirmation, a small form built from field specs, and a secret shown once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 72; max-width: 100%; height: auto; max-height: 100%;
    border: thick $primary; background: $surface; padding: 0 1;
}}
{name} .title {{ text-style: bold; margin: 0 0 1 0; }}
{name} .buttons {{ height: 3; align-horizontal: right; }}
{name} .buttons Button {{ margin: 0 0 0 1; }}
{name} Input, {name} Select {{ margin: 0 0 0 0; }}
{name} .hint {{ color: $text-muted; }}
"""


class ConfirmModal(ModalScreen[bool]):
    """Yes/no for destructive actions; Escape or n says no."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,n", "answer(False)", "No"),
                                             Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="title")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="no")
                yield Button(self.yes, variant="error", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


@dataclass
class FormField:
    """One field of a FormModal. `options` makes it a Select, `kind="bool"` a Checkbox."""

    name: str
    label: str
    value: Any = ""
    options: list[tuple[str, Any]] | None = None
    kind: str = "text"  # text, int, float, bool
    required: bool = True
    placeholder: str = ""
    hint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class FormModal(ModalScreen[dict[str, Any] | None]):
    """A titled form; Enter or the button submits the values (typed per field), Escape cancels."""

    DEFAULT_CSS = MODAL_CSS.format(name="FormModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[FormField], submit: str = "OK", note: str = "") -> None:
        super().__init__()
        self.form_title, self.fields, self.submit, self.note = title, fields, submit, note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.form_title, classes="title")
            if self.note:
                yield Static(self.note, classes="hint", id="note")
            for f in self.fields:
                if f.kind == "bool":
                    yield Checkbox(f.label, bool(f.value), id=f"field-{f.name}")
                    continue
                yield Label(f.label)
                if f.options is not None:
                    yield Select(f.options, value=f.value if f.value not in ("", None) else Select.NULL,
                                 allow_blank=not f.required, id=f"field-{f.name}")
                else:
                    yield Input(str(f.value), placeholder=f.placeholder, id=f"field-{f.name}")
                if f.hint:
                    yield Static(f.hint, classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.submit, variant="primary", id="submit")

    def values(self) -> dict[str, Any] | None:
        """The typed values, or None after notifying what is missing or malformed."""
        out: dict[str, Any] = {}
        for f in self.fields:
            widget = self.query_one(f"#field-{f.name}")
            raw: Any
            if isinstance(widget, Checkbox):
                raw = widget.value
            elif isinstance(widget, Select):
                raw = None if widget.value is Select.NULL else widget.value
            else:
                raw = widget.value.strip() if isinstance(widget, Input) else None
            if raw in ("", None):
                if f.required:
                    self.notify(f"{f.label} is required", severity="warning")
                    return None
                out[f.name] = None
                continue
            try:
                out[f.name] = int(raw) if f.kind == "int" else float(raw) if f.kind == "float" else raw
            except ValueError:
                self.notify(f"{f.label}: {raw!r} is not a number", severity="warning")
                return None
        return out

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def submit_form(self) -> None:
        values = self.values()
        if values is not None:
            self.dismiss(values)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class SecretModal(ModalScreen[None]):
    """A token the daemon returns once: shown selectable, with the warning that it will not be shown again."""

    DEFAULT_CSS = MODAL_CSS.format(name="SecretModal") + "SecretModal Input { margin: 1 0; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, secret: str) -> None:
        super().__init__()
        self.secret_title, self.secret = title, secret

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.secret_title, classes="title")
            yield Static("Copy it now: only its hash is stored, it will not be shown again.", classes="hint")
            yield Input(self.secret, id="secret")
            with Horizontal(classes="buttons"):
                yield Button("Copy", id="copy")
                yield Button("Done", variant="primary", id="done")

    @on(Button.Pressed, "#copy")
    def copy(self) -> None:
        self.app.copy_to_clipboard(self.secret)  # OSC 52: works over SSH in terminals that allow it
        self.notify("Copied to the clipboard (if the terminal allows OSC 52)")

    @on(Button.Pressed, "#done")
    def action_close(self) -> None:
        self.dismiss(None)
