"""Models: the registry, import from a path, details with metadata and lineage, delete with confirmation."""

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
from tui.widgets.modals import ConfirmModal, FormField, FormModal
from tui.widgets.tables import selected_key, sync_rows

Json = dict[str, Any]


def meta_value(value: object) -> str:
    """One line per metadata entry: a reference by its name, training metrics by what they say."""
    if isinstance(value, dict):
        if "name" in value:
            return f"{value['name']}" + (f" v{value['version']}" if "version" in value else "")
        if "eval_loss_before" in value:
            return (f"{value.get('steps')} steps, eval loss {value['eval_loss_before']:.3f} → "
                    f"{value.get('eval_loss_after', float('nan')):.3f}")
        if "score_before" in value:
            return f"golden score {value['score_before']:.2f} → {value.get('score_after', float('nan')):.2f}"
        shown = {k: v for k, v in value.items() if v is not None and not isinstance(v, dict | list)}
        return ", ".join(f"{k}={v}" for k, v in shown.items())[:80] or f"{len(value)} entries"
    if isinstance(value, list):
        return ", ".join(map(str, value))[:80]
    return str(value)


def describe(detail: Json, now: float) -> str:
    """Rich text of one model: what it is, the chain of models it was derived from, its metadata."""
    m = detail["model"]
    lines = [
        f"[b]{m['name']}[/b]  [dim]{m['id']}[/dim]",
        f"{m['kind']} · {m['format']} · {m.get('quantization') or 'unquantized'} · {fmt.params(m.get('params'))} "
        f"params · {fmt.size(m.get('size_bytes'))}",
        f"architecture {m.get('architecture') or '?'} · context {fmt.number(m.get('context_length'))}",
        f"imported {fmt.ago(m.get('created_at'), now)} from {escape(str(m.get('source')))}",
        f"sha256 {m.get('sha256', '')[:32]}…",
        "",
        "[b]Lineage[/b]",
    ]
    chain = [m, *detail.get("lineage", [])]
    # Each line is derived from the one below it: adapter ← the HF copy it trained on ← the imported GGUF.
    lines += [f"  {'  ' * (i - 1)}{'└─ ' * (i > 0)}{escape(x['name'])} ({x['kind']})" for i, x in enumerate(chain)]
    if len(chain) == 1:
        lines.append("  [dim]a base model: no parent[/dim]")
    lines += ["", "[b]Metadata[/b]"]
    lines += [f"  {k}: {escape(meta_value(v))}" for k, v in sorted(m.get("metadata", {}).items())] or ["  (none)"]
    return "\n".join(lines)


class ModelsScreen(ApplianceScreen):
    MODE = "models"
    CSS_PATH = "models.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        *ApplianceScreen.BINDINGS,
        Binding("i", "import_model", "Import"),
        Binding("d", "delete_model", "Delete"),
    ]

    class Listed(Message):
        def __init__(self, models: list[Json]) -> None:
            super().__init__()
            self.models = models

    class Detailed(Message):
        def __init__(self, detail: Json) -> None:
            super().__init__()
            self.detail = detail

    def body(self) -> ComposeResult:
        with Horizontal(id="split"):
            yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail-box"):
                yield Static("Select a model to see its metadata and lineage.", id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#models", DataTable).add_columns("name", "kind", "fmt", "quant", "params", "size")

    async def load(self) -> None:
        self.post_message(self.Listed(await self.api.models()))

    @on(Listed)
    def show_models(self, event: Listed) -> None:
        rows = [(m["name"], [m["name"], m["kind"], m["format"], m.get("quantization") or "",
                             fmt.params(m.get("params")), fmt.size(m.get("size_bytes"))]) for m in event.models]
        sync_rows(self.query_one("#models", DataTable), rows)
        if not event.models:
            self.query_one("#detail", Static).update("No models yet: press [b]i[/b] to import one.")

    def selected(self) -> str | None:
        return selected_key(self.query_one("#models", DataTable))

    @on(DataTable.RowHighlighted, "#models")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._fetch_detail(str(event.row_key.value))

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _fetch_detail(self, name: str) -> None:
        detail = await self.guard(self.api.model(name))
        if detail is not None:
            self.post_message(self.Detailed(detail))

    @on(Detailed)
    def show_detail(self, event: Detailed) -> None:
        self.query_one("#detail", Static).update(describe(event.detail, self.now()))

    def action_import_model(self) -> None:
        fields = [
            FormField("path", "Path on the appliance", placeholder="/var/lib/slm-appliance/imports/model.gguf",
                      hint="A GGUF file or HF folder under an allowed import root; it is copied, never moved."),
            FormField("name", "Registry name", placeholder="my-model"),
        ]

        def done(values: dict[str, Any] | None) -> None:
            if values:
                self.act(self.api.import_model(values["path"], values["name"]), f"Imported {values['name']}")

        self.app.push_screen(FormModal("Import a model", fields, "Import"), done)

    def action_delete_model(self) -> None:
        name = self.selected()
        if name is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.act(self.api.delete_model(name), f"Deleted {name}")

        self.app.push_screen(ConfirmModal(f"Delete model {name!r} and its files?"), done)
