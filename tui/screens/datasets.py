"""Datasets: versions with their stats, the validation report with line-numbered errors, and import."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from tui import format as fmt
from tui.screens.base import ApplianceScreen
from tui.widgets.modals import FormField, FormModal
from tui.widgets.tables import sync_rows

Json = dict[str, Any]
SHOWN_ERRORS = 50


def report_text(record: Json, now: float) -> str:
    """Rich text of one dataset version: counts, token lengths, shapes, then errors and duplicates by line."""
    r = record.get("report", {})
    lines = [
        f"[b]{record['name']}[/b] v{record['version']}  [dim]{record['id'][:12]} · {fmt.ago(record['created_at'], now)}"
        "[/dim]",
        f"{r.get('format', record.get('format'))} · {r.get('numbering', '')}",
        f"read {record['records_read']} · valid {record['records_valid']} · "
        f"[red]invalid {record['records_invalid']}[/red] · duplicates removed {record['duplicates_removed']} "
        f"({r.get('exact_duplicates', 0)} exact, {r.get('near_duplicates', 0)} near"
        + (f", {r['semantic_duplicates']} semantic)" if r.get("semantic_dedup") else ")"),
        f"split: {record['train_count']} train / {record['eval_count']} eval "
        f"(eval {r.get('eval_fraction', 0):.0%}, seed {r.get('seed', 0)})",
    ]
    if r.get("shapes"):
        lines.append("shapes: " + ", ".join(f"{k} {v}" for k, v in sorted(r["shapes"].items())))
    lengths = r.get("token_lengths")
    if lengths:
        lines.append(f"tokens ({r.get('token_counter')}): p50 {lengths['p50']} · p90 {lengths['p90']} · "
                     f"p99 {lengths['p99']} · max {lengths['max']} (limit {r.get('max_seq_length')})")
    errors = r.get("errors", [])
    lines += ["", f"[b]Validation errors[/b] ({r.get('error_count', len(errors))})"]
    lines += [f"  [red]{e['unit']} {e['line']}[/red]: {escape(e['message'])}" for e in errors[:SHOWN_ERRORS]]
    if not errors:
        lines.append("  [green]none[/green]")
    elif r.get("error_count", 0) > SHOWN_ERRORS:
        lines.append(f"  … and {r['error_count'] - SHOWN_ERRORS} more")
    dupes = r.get("duplicates", [])
    if dupes:
        lines += ["", "[b]Duplicates[/b]"]
        for d in dupes[:SHOWN_ERRORS]:
            how = {"exact": "exact", "semantic": f"semantic, cosine {d.get('similarity') or 0:.3f}"}.get(
                d["kind"], f"near, Jaccard {d['jaccard']:.2f}")
            lines.append(f"  {d['unit']} {d['line']}: {how} duplicate of {d['unit']} {d['duplicate_of']}")
    return "\n".join(lines)


class DatasetsScreen(ApplianceScreen):
    MODE = "datasets"
    CSS_PATH = "datasets.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [*ApplianceScreen.BINDINGS, Binding("i", "import_dataset", "Import")]

    class Listed(Message):
        def __init__(self, datasets: list[Json], models: list[Json]) -> None:
            super().__init__()
            self.datasets, self.models = datasets, models

    class ImportFinished(Message):
        def __init__(self, job: Json) -> None:
            super().__init__()
            self.job = job

    def body(self) -> ComposeResult:
        with Horizontal(id="split"):
            yield DataTable(id="datasets", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="report-box"):
                yield Static("Select a dataset version to see its validation report.", id="report")

    def on_mount(self) -> None:
        super().on_mount()
        self.records: dict[str, Json] = {}
        self.model_names: list[str] = []
        self.query_one("#datasets", DataTable).add_columns("name", "ver", "train", "eval", "invalid", "dupes")

    async def load(self) -> None:
        datasets, models = await self.api.datasets(), await self.api.models()
        self.post_message(self.Listed(datasets, models))

    @on(Listed)
    def show_datasets(self, event: Listed) -> None:
        self.model_names = [m["name"] for m in event.models]
        self.records = {f"{d['name']}@{d['version']}": d for d in event.datasets}
        rows = [(key, [d["name"], d["version"], d["train_count"], d["eval_count"], d["records_invalid"],
                       d["duplicates_removed"]]) for key, d in self.records.items()]
        sync_rows(self.query_one("#datasets", DataTable), rows)
        if not self.records:
            self.query_one("#report", Static).update("No datasets yet: press [b]i[/b] to import one.")

    @on(DataTable.RowHighlighted, "#datasets")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        record = self.records.get(str(event.row_key.value))
        if record is not None:
            self.query_one("#report", Static).update(report_text(record, self.now()))

    def action_import_dataset(self) -> None:
        fields = [
            FormField("path", "Path on the appliance", placeholder="/var/lib/slm-appliance/imports/data.jsonl",
                      hint="JSONL, CSV or Parquet under an allowed import root"),
            FormField("name", "Dataset name", placeholder="faq"),
            FormField("base_model", "Base model (its tokenizer counts tokens)", None, required=False,
                      options=[(n, n) for n in self.model_names]),
            FormField("strict", "Refuse the file on any defect", False, kind="bool"),
        ]
        self.app.push_screen(FormModal("Import a dataset", fields, "Import"), self._import)

    def _import(self, values: dict[str, Any] | None) -> None:
        if values:
            body = {k: v for k, v in values.items() if v is not None}
            self._run_import(body)

    @work(group="import", exit_on_error=False)
    async def _run_import(self, body: Json) -> None:
        job = await self.guard(self.api.import_dataset(body))
        if job is None:
            return
        self.notify(f"Import of {body['name']} runs as job {job['id']}", title="Dataset import")

        async def until_done() -> None:
            async for _ in self.api.job_events(job["id"]):
                pass  # the Jobs screen shows the progress; here only the outcome matters

        await self.guard(until_done())
        final = await self.guard(self.api.job(job["id"]))
        if final is not None:
            self.post_message(self.ImportFinished(final))

    @on(ImportFinished)
    def import_finished(self, event: ImportFinished) -> None:
        job = event.job
        if job["state"] == "succeeded":
            self.notify(f"{job['params'].get('name')} imported", title="Dataset import")
        else:
            self.notify(job.get("error") or job["state"], title=f"Dataset import {job['state']}", severity="error")
        self.action_reload()
