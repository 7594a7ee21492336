"""The review's edit dialog: the answer's text, or the whole conversation as JSON, for `edit` decisions. It
returns the conversation to accept (ending with the answer), or None when cancelled."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static, TextArea

from appliance.client.review import answer_of, parse_conversation, with_answer
from tui.widgets.modals import MODAL_CSS

Json = dict[str, Any]


class EditAnswerModal(ModalScreen[list[Json] | None]):
    """Starts on the answer's text; the checkbox switches to the whole conversation as JSON (and back, keeping
    what was typed). Ctrl+S saves, Escape cancels; a conversation that is not valid JSON is a warning."""

    DEFAULT_CSS = MODAL_CSS.format(name="EditAnswerModal") + """
    EditAnswerModal > Vertical { width: 100; }
    EditAnswerModal #text { height: 12; margin: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"),
                                             Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, title: str, messages: list[Json]) -> None:
        """`messages`: the conversation as it stands (the captured one with its answer, or an earlier edit)."""
        super().__init__()
        self.edit_title, self.messages = title, messages

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.edit_title, classes="title")
            yield Static("The answer it should have given; accepted as an edit. Ctrl+S saves.", classes="hint")
            yield Checkbox("Edit the whole conversation as JSON", id="as-json")
            yield TextArea(answer_of(self.messages), id="text")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save edit", variant="primary", id="save")

    def on_mount(self) -> None:
        self.query_one("#text", TextArea).focus()

    def _edited(self) -> list[Json] | None:
        """The conversation the text area says, or None after a warning."""
        text = self.query_one("#text", TextArea).text
        if not self.query_one("#as-json", Checkbox).value:
            return with_answer(self.messages, text)
        try:
            return parse_conversation(text)
        except ValueError as exc:
            self.notify(str(exc), title="Not a conversation", severity="warning")
            return None

    @on(Checkbox.Changed, "#as-json")
    def switch(self, event: Checkbox.Changed) -> None:
        area = self.query_one("#text", TextArea)
        if event.value:
            self.messages = with_answer(self.messages, area.text)
            area.load_text(json.dumps(self.messages, indent=2, ensure_ascii=False))
            return
        try:
            self.messages = parse_conversation(area.text)
        except ValueError as exc:
            self.notify(str(exc), title="Not a conversation", severity="warning")
            with event.checkbox.prevent(Checkbox.Changed):
                event.checkbox.value = True
            return
        area.load_text(answer_of(self.messages))

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        messages = self._edited()
        if messages is not None:
            self.dismiss(messages)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
