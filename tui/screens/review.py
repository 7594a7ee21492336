"""Review: the captured answers (redacted, with the apps' feedback) as a filterable queue; the selected item's
conversation, answer, feedback and review; accept, edit, reject or reopen it; export the accepted items into a
new dataset version."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, DataTable, Select, Static

from appliance.client.review import STATES, conversation, feedback_lines, item_heading, rating, review_text
from tui import format as fmt
from tui.screens.base import ApplianceScreen
from tui.widgets.modals import FormField, FormModal
from tui.widgets.review_edit import EditAnswerModal
from tui.widgets.tables import selected_key, sync_rows

Json = dict[str, Any]
PAGE = 200  # items listed at once, newest first
ALL = "all"
STATE_STYLE = {"accepted": "green", "edited": "cyan", "rejected": "red", "pending": "yellow"}
EMPTY = ("Nothing captured yet. Capture is off until a deployment's policy switches it on:\n"
         "  slm-appliance deploy policy set NAME --file policy.toml   ([capture] enabled = true)")


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def _messages(messages: list[Json]) -> list[str]:
    return [f"[b]{fmt.literal(m['role'])}[/b]  {fmt.literal(str(m['content']))}" for m in messages]


def detail_text(detail: Json, now: float) -> str:
    """Rich text of one item: id, age and review; the redacted conversation and answer; the feedback; the edit."""
    item, review = detail["item"], detail.get("review") or {}
    state = str(review.get("state", "pending"))
    lines = [f"[b]{fmt.literal(item['response_id'])}[/b] · {fmt.ago(item['created_at'], now)} · {_state(state)}"
             f"{fmt.literal(review_text(review).removeprefix(state))}",
             f"[dim]{fmt.literal(item_heading(item))}[/dim]", "", "[b $accent]Conversation[/] [dim](redacted)[/dim]"]
    lines += _messages(item["messages"])
    lines += ["", "[b $accent]Answer[/]", fmt.literal(item["answer"]), "", "[b $accent]Feedback[/]"]
    rows = feedback_lines(detail.get("feedback"))
    lines += [f"  [dim]{label:<10}[/dim] {fmt.literal(text)}" for label, text in rows] \
        or ["  none: captured by the sample"]
    if review.get("messages"):
        kept = " [dim](kept for the next decision)[/dim]" if review.get("state") == "pending" else ""
        lines += ["", f"[b $accent]Edited conversation[/]{kept}", *_messages(review["messages"])]
    return "\n".join(lines)


class ReviewScreen(ApplianceScreen):
    MODE = "review"
    POLL = True
    CSS_PATH = "review.tcss"
    AUTO_FOCUS = "#captures"
    # `r` rejects here (the queue refreshes itself while shown; ctrl+r refreshes at once).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "reload", "Refresh", show=False),
        Binding("a", "decide('accept')", "Accept"),
        Binding("e", "edit", "Edit"),
        Binding("r", "decide('reject')", "Reject"),
        Binding("o", "decide('reopen')", "Reopen"),
        Binding("x", "export", "Export"),
    ]

    class Listed(Message):
        def __init__(self, listing: Json, deployments: list[str], detail: Json | None) -> None:
            super().__init__()
            self.listing, self.deployments, self.detail = listing, deployments, detail

    class Opened(Message):
        """The highlighted item, fetched fresh."""

        def __init__(self, detail: Json) -> None:
            super().__init__()
            self.detail = detail

    class ExportRequested(Message):
        def __init__(self, models: list[str], deployments: list[str]) -> None:
            super().__init__()
            self.models, self.deployments = models, deployments

    def body(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Select([("all states", ALL), *((s, s) for s in STATES)], value=ALL, allow_blank=False,
                         compact=True, id="state")
            yield Select([("any rating", ALL), ("rated down", "down"), ("rated up", "up")], value=ALL,
                         allow_blank=False, compact=True, id="rated")
            yield Checkbox("corrected", compact=True, id="corrected")
            yield Select([("all deployments", ALL)], value=ALL, allow_blank=False, compact=True, id="deployment")
            yield Static("", id="count")
        yield DataTable(id="captures", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="detail-box"):
            yield Static("Select an item.", id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        self.filters: Json = {}
        self.open_id: str | None = None
        self.detail: Json | None = None
        self.deployment_names: list[str] = []
        self.query_one("#captures", DataTable).add_columns("captured", "state", "rating", "key", "prompt",
                                                           "deployment")

    @on(Select.Changed, "#filters Select")
    @on(Checkbox.Changed, "#corrected")
    def filtered(self) -> None:
        values = {name: self.query_one(f"#{name}", Select).value for name in ("state", "rated", "deployment")}
        self.filters = {name: value for name, value in values.items() if value != ALL}
        if self.query_one("#corrected", Checkbox).value:
            self.filters["corrected"] = True
        self.action_reload()

    async def load(self) -> None:
        listing, deployments = await asyncio.gather(self.api.captures(**self.filters, limit=PAGE),
                                                    self.api.deployments())
        ids = [i["response_id"] for i in listing["items"]]
        chosen = self.open_id if self.open_id in ids else (ids[0] if ids else None)
        detail = await self.api.capture(chosen) if chosen else None
        self.post_message(self.Listed(listing, [d["name"] for d in deployments], detail))

    @on(Listed)
    def show_queue(self, event: Listed) -> None:
        self._deployments(event.deployments)
        now, items = self.now(), event.listing["items"]
        rows = [(i["response_id"], [fmt.ago(i["created_at"], now), _state(i["state"]),
                                    rating(i.get("score"), i.get("label")) + (" ✎" if i.get("corrected") else ""),
                                    i["key_name"], fmt.literal(i["preview"][:48]), i["deployment"]]) for i in items]
        if event.detail is not None and self.open_id is None:
            self.open_id = event.detail["item"]["response_id"]  # already fetched: no second fetch on highlight
        sync_rows(self.query_one("#captures", DataTable), rows)
        total = event.listing["total"]
        self.query_one("#count", Static).update(f"{len(items)} of {total}" if total > len(items) else
                                                f"{total} items")
        if event.detail is not None:
            self._show(event.detail)
        elif not items:
            self.detail = None
            self.query_one("#detail", Static).update(EMPTY if not self.filters else "No items match the filters.")

    def _deployments(self, names: list[str]) -> None:
        """The deployment filter's options, kept when the deployments are the same."""
        if names != self.deployment_names:
            self.deployment_names = names
            select = self.query_one("#deployment", Select)
            current = select.value
            with select.prevent(Select.Changed):
                select.set_options([("all deployments", ALL), *((n, n) for n in names)])
                select.value = current if current in names else ALL

    @on(DataTable.RowHighlighted, "#captures")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        response_id = str(event.row_key.value)
        if response_id != self.open_id:
            self.open_id = response_id
            self._open(response_id)

    @work(exclusive=True, group="open", exit_on_error=False)
    async def _open(self, response_id: str) -> None:
        detail = await self.guard(self.api.capture(response_id))
        if detail is not None:
            self.post_message(self.Opened(detail))

    @on(Opened)
    def opened(self, event: Opened) -> None:
        self._show(event.detail)

    def _show(self, detail: Json) -> None:
        if detail["item"]["response_id"] != selected_key(self.query_one("#captures", DataTable)):
            return  # the operator moved on while it was fetched
        self.detail = detail
        self.query_one("#detail", Static).update(detail_text(detail, self.now()))

    def _selected(self) -> str | None:
        response_id = selected_key(self.query_one("#captures", DataTable))
        if response_id is None:
            self.notify("Select a captured item first", severity="warning")
        return response_id

    def action_decide(self, action: str) -> None:
        if (response_id := self._selected()) is not None:
            past = {"accept": "Accepted", "reject": "Rejected", "reopen": "Reopened"}[action]
            self.act(self.api.review_capture(response_id, action), f"{past} {response_id}")

    def action_edit(self) -> None:
        response_id = self._selected()
        if response_id is None or self.detail is None or self.detail["item"]["response_id"] != response_id:
            return

        def done(messages: list[Json] | None) -> None:
            if messages is not None:
                self.act(self.api.review_capture(response_id, "edit", messages), f"Edited {response_id}")

        self.app.push_screen(EditAnswerModal(f"Edit {response_id}", conversation(self.detail)), done)

    def action_export(self) -> None:
        async def gather() -> None:
            fetched = await self.guard(asyncio.gather(self.api.models(), self.api.deployments()))
            if fetched is not None:
                models, deployments = fetched
                self.post_message(self.ExportRequested([m["name"] for m in models], [d["name"] for d in deployments]))

        self.run_worker(gather(), group="act", exit_on_error=False)

    @on(ExportRequested)
    def open_export(self, event: ExportRequested) -> None:
        fields = [
            FormField("kind", "Dataset kind", "sft", options=[("sft: conversations", "sft"),
                                                              ("preference: chosen / rejected", "preference"),
                                                              ("kto: answers with thumbs", "kto")]),
            FormField("dataset", "Dataset (a new version of it)", placeholder="support"),
            FormField("base_model", "Base model (its tokenizer counts tokens)", None, required=False,
                      options=[(n, n) for n in event.models]),
            FormField("deployment", "Only items of deployment", self.filters.get("deployment"), required=False,
                      options=[(n, n) for n in event.deployments]),
        ]
        self.app.push_screen(FormModal("Export accepted and edited items", fields, "Export",
                                       note="Accepted and edited items become dataset rows; the import runs "
                                            "as a job."), self._export)

    def _export(self, values: dict[str, Any] | None) -> None:
        if values:
            body = {"kind": values["kind"], "dataset": values["dataset"], "base_model": values["base_model"],
                    "selection": {"deployment": values["deployment"]}}
            self._run_export(body)

    @work(group="export", exit_on_error=False)
    async def _run_export(self, body: Json) -> None:
        started = await self.guard(self.api.export_captures(body))
        if started is not None:
            export, job = started["export"], started["job"]
            skipped = f", {len(export['skipped'])} skipped" if export["skipped"] else ""
            self.notify(f"{export['rows']} {export['kind']} rows from {export['items']} items{skipped}: "
                        f"importing into {body['dataset']} as job {job['id']}", title="Review export", timeout=10)
