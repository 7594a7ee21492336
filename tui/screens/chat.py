"""Chat: stream an answer from a deployment through the OpenAI-compatible gateway, with tokens per second."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Select, Static

from tui.screens.base import ApplianceScreen

Json = dict[str, Any]


class ChatScreen(ApplianceScreen):
    MODE = "chat"
    CSS_PATH = "chat.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        *ApplianceScreen.BINDINGS,
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+l", "clear", "Clear"),
    ]
    MAX_TOKENS: ClassVar[int] = 256

    class Listed(Message):
        def __init__(self, deployments: list[Json]) -> None:
            super().__init__()
            self.deployments = deployments

    class Streamed(Message):
        """More of the answer arrived."""

        def __init__(self, text: str, tokens: int, elapsed: float) -> None:
            super().__init__()
            self.text, self.tokens, self.elapsed = text, tokens, elapsed

    class Answered(Message):
        def __init__(self, tokens: int, per_second: float | None) -> None:
            super().__init__()
            self.tokens, self.per_second = tokens, per_second

    def body(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield Select[str]([], prompt="deployment", id="model")
            yield Static("", id="rate")
        yield VerticalScroll(id="transcript")
        yield Input(placeholder="Ask something; Enter sends, Esc stops", id="prompt")

    def on_mount(self) -> None:
        super().on_mount()
        self.history: list[Json] = []
        self.answer: Static | None = None
        self.answer_text = ""

    async def load(self) -> None:
        self.post_message(self.Listed(await self.api.deployments()))

    @on(Listed)
    def show_models(self, event: Listed) -> None:
        select = self.query_one("#model", Select)
        ready = [d["name"] for d in event.deployments if d["state"] == "ready"]
        current = select.value
        select.set_options([(n, n) for n in ready])
        if current in ready:
            select.value = current
        elif ready:
            select.value = ready[0]
        else:
            self.query_one("#rate", Static).update("[yellow]no deployment is ready[/]")

    @on(Input.Submitted, "#prompt")
    def send(self, event: Input.Submitted) -> None:
        model = self.query_one("#model", Select).value
        text = event.value.strip()
        if not text:
            return
        if model is Select.NULL:
            self.notify("No deployment is ready to answer", severity="warning")
            return
        event.input.value = ""
        self.history.append({"role": "user", "content": text})
        transcript = self.query_one("#transcript", VerticalScroll)
        transcript.mount(Static(f"[b]you[/b] {escape(text)}", classes="user"))
        self.answer, self.answer_text = Static("[b]assistant[/b] …", classes="assistant"), ""
        transcript.mount(self.answer)
        transcript.scroll_end(animate=False)
        self._stream(str(model), list(self.history))

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def _stream(self, model: str, messages: list[Json]) -> None:
        await self.guard(self._relay(model, messages))

    async def _relay(self, model: str, messages: list[Json]) -> None:
        started = self.control.clock()
        tokens, per_second = 0, None
        async for chunk in self.api.chat(model, messages, self.MAX_TOKENS):
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    tokens += 1  # llama-server streams one token per chunk
                    self.post_message(self.Streamed(piece, tokens, self.control.clock() - started))
            timings = chunk.get("timings") or {}
            if timings.get("predicted_per_second"):
                per_second = float(timings["predicted_per_second"])
                tokens = int(timings.get("predicted_n", tokens))
        self.post_message(self.Answered(tokens, per_second))

    @on(Streamed)
    def streamed(self, event: Streamed) -> None:
        if self.answer is None:
            return
        self.answer_text += event.text
        self.answer.update(f"[b]assistant[/b] {escape(self.answer_text)}")
        rate = event.tokens / event.elapsed if event.elapsed > 0 else 0.0
        self.query_one("#rate", Static).update(f"{event.tokens} tokens · {rate:.1f} tok/s")
        self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)

    @on(Answered)
    def answered(self, event: Answered) -> None:
        self.history.append({"role": "assistant", "content": self.answer_text})
        if event.per_second is not None:
            self.query_one("#rate", Static).update(f"{event.tokens} tokens · {event.per_second:.1f} tok/s (backend)")
        self.answer = None

    def action_stop(self) -> None:
        self.workers.cancel_group(self, "chat")
        if self.answer is not None:
            self.history.append({"role": "assistant", "content": self.answer_text})
            self.answer.update(f"[b]assistant[/b] {escape(self.answer_text)} [dim](stopped)[/dim]")
            self.answer = None

    def action_clear(self) -> None:
        self.action_stop()
        self.history.clear()
        self.query_one("#transcript", VerticalScroll).remove_children()
        self.query_one("#rate", Static).update("")
