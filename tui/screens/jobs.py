"""Jobs: the queue, the selected job's live progress (server-sent events), loss curve and log; submit, cancel."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from appliance.client.progress import bar
from tui import format as fmt
from tui.screens.base import ApplianceScreen
from tui.widgets.jobdetail import JobDetail
from tui.widgets.modals import ConfirmModal
from tui.widgets.submit import SubmitJobModal
from tui.widgets.tables import selected_key, sync_rows

Json = dict[str, Any]
FINAL = ("succeeded", "failed", "cancelled")
STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def progress_cell(job: Json) -> str:
    share = fmt.fraction(job.get("progress", {}))
    if share is None:
        return str(job.get("progress", {}).get("phase", ""))[:16]
    return f"{bar(share, 10)} {100 * share:3.0f}%"


class JobsScreen(ApplianceScreen):
    MODE = "jobs"
    POLL = True
    CSS_PATH = "jobs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        *ApplianceScreen.BINDINGS,
        Binding("n", "submit_job", "Submit"),
        Binding("c", "cancel_job", "Cancel job"),
    ]

    class Listed(Message):
        def __init__(self, jobs: list[Json]) -> None:
            super().__init__()
            self.jobs = jobs

    class Opened(Message):
        """The selected job and its log, fetched fresh."""

        def __init__(self, job: Json, log: str) -> None:
            super().__init__()
            self.job, self.log = job, log

    class JobProgressed(Message):
        def __init__(self, job_id: str, progress: Json) -> None:
            super().__init__()
            self.job_id, self.progress = job_id, progress

    class JobLogged(Message):
        def __init__(self, job_id: str, line: str) -> None:
            super().__init__()
            self.job_id, self.line = job_id, line

    class JobStateChanged(Message):
        def __init__(self, job_id: str, state: str, error: str) -> None:
            super().__init__()
            self.job_id, self.state, self.error = job_id, state, error

    class SubmitRequested(Message):
        def __init__(self, kinds: list[Json], models: list[Json], datasets: list[Json], training: Json) -> None:
            super().__init__()
            self.kinds, self.models, self.datasets, self.training = kinds, models, datasets, training

    def body(self) -> ComposeResult:
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield JobDetail(id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        self.open_id: str | None = None
        self.jobs: dict[str, Json] = {}
        self.query_one("#jobs", DataTable).add_columns("id", "type", "state", "progress", "created")

    async def load(self) -> None:
        self.post_message(self.Listed(await self.api.jobs()))

    @on(Listed)
    def show_jobs(self, event: Listed) -> None:
        self.jobs = {j["id"]: j for j in event.jobs}
        now = self.now()
        rows = []
        for j in event.jobs:
            style = STATE_STYLE.get(j["state"], "")
            state = f"[{style}]{j['state']}[/]" if style else j["state"]
            rows.append((j["id"], [j["id"], j["type"], state, progress_cell(j), fmt.ago(j.get("created_at"), now)]))
        sync_rows(self.query_one("#jobs", DataTable), rows)

    def selected(self) -> str | None:
        return selected_key(self.query_one("#jobs", DataTable))

    @on(DataTable.RowHighlighted, "#jobs")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        job_id = str(event.row_key.value)
        if job_id != self.open_id:
            self.open_id = job_id
            self._open(job_id)

    @work(exclusive=True, group="follow", exit_on_error=False)
    async def _open(self, job_id: str) -> None:
        """Fetch the job and its log, then follow its events until it ends or another job is selected."""
        fetched = await self.guard(asyncio.gather(self.api.job(job_id), self.api.job_logs(job_id)))
        if fetched is None:
            return
        job, log = fetched
        self.post_message(self.Opened(job, log))
        if job["state"] not in FINAL:
            await self.guard(self._follow(job_id))

    async def _follow(self, job_id: str) -> None:
        async for event in self.api.job_events(job_id):
            kind = event.pop("event", "")
            if kind == "progress":
                self.post_message(self.JobProgressed(job_id, event))
            elif kind == "log":
                self.post_message(self.JobLogged(job_id, str(event.get("message", ""))))
            elif kind == "state":
                self.post_message(self.JobStateChanged(job_id, str(event.get("state")), str(event.get("error") or "")))

    @on(Opened)
    def opened(self, event: Opened) -> None:
        detail = self.query_one(JobDetail)
        detail.show_job(event.job, self.now())
        detail.set_log(event.log)

    @on(JobProgressed)
    def progressed(self, event: JobProgressed) -> None:
        if event.job_id == self.open_id:
            self.query_one(JobDetail).show_progress(event.progress)
        if event.job_id in self.jobs:
            self.jobs[event.job_id]["progress"] = event.progress
            table = self.query_one("#jobs", DataTable)
            table.update_cell(event.job_id, table.ordered_columns[3].key, progress_cell(self.jobs[event.job_id]))

    @on(JobLogged)
    def logged(self, event: JobLogged) -> None:
        if event.job_id == self.open_id:
            self.query_one(JobDetail).add_log(event.line)

    @on(JobStateChanged)
    def state_changed(self, event: JobStateChanged) -> None:
        if event.job_id == self.open_id:
            self.query_one(JobDetail).set_state(event.state, event.error)
        if event.state in FINAL:
            self.notify(event.error or f"job {event.job_id} {event.state}", title=f"Job {event.state}",
                        severity="information" if event.state == "succeeded" else "warning")
            self.open_id = None  # reopen on the next highlight to pick up the result
        self.action_reload()

    def action_submit_job(self) -> None:
        async def gather() -> None:
            fetched = await self.guard(asyncio.gather(self.api.job_kinds(), self.api.models(), self.api.datasets(),
                                                      self.api.profiles()))
            if fetched is not None:
                kinds, models, datasets, profiles = fetched
                chosen: Json = next((p for p in profiles["profiles"] if p["name"] == profiles["selected"]), {})
                self.post_message(self.SubmitRequested(kinds, models, datasets, chosen.get("training", {})))

        self.run_worker(gather(), group="act", exit_on_error=False)

    @on(SubmitRequested)
    def open_form(self, event: SubmitRequested) -> None:
        modal = SubmitJobModal(self.api, event.kinds, event.models, event.datasets, event.training)
        self.app.push_screen(modal, self._submit)

    def _submit(self, choice: tuple[str, Json] | None) -> None:
        if choice is not None:
            job_type, params = choice
            self.act(self.api.submit_job(job_type, params), f"{job_type} job queued")

    def action_cancel_job(self) -> None:
        job_id = self.selected()
        if job_id is None or self.jobs.get(job_id, {}).get("state") in FINAL:
            self.notify("Select a queued or running job to cancel", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes and job_id:
                self.act(self.api.cancel_job(job_id), f"Cancel requested for {job_id}")

        self.app.push_screen(ConfirmModal(f"Cancel job {job_id}? A running job checkpoints first.", "Cancel job"),
                             done)
