"""One job: a progress bar with the worker's ETA, the loss curve (textual-plotext) and the tail of its log."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Log, ProgressBar, Static
from textual_plotext import PlotextPlot

from tui import format as fmt

Json = dict[str, Any]
LOG_LINES = 200


class LossPlot(PlotextPlot):
    """Training loss by step; empty until a worker reports a loss."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[tuple[int, float]] = []

    def on_mount(self) -> None:
        self.plt.title("loss")
        self.plt.xlabel("step")

    def reset(self, losses: list[float] | None = None) -> None:
        self.points = [(i + 1, float(v)) for i, v in enumerate(losses or [])]
        self._draw()

    def add(self, step: int, loss: float) -> None:
        if self.points and self.points[-1][0] >= step:
            self.points = [p for p in self.points if p[0] < step]  # a resumed job replays from its checkpoint
        self.points.append((step, loss))
        self._draw()

    def _draw(self) -> None:
        self.display = bool(self.points)  # jobs that report no loss (imports) get the log full width
        self.plt.clear_data()
        if self.points:
            steps, losses = zip(*self.points, strict=True)
            self.plt.plot(list(steps), list(losses), marker="braille")
        self.refresh()


class JobDetail(Vertical):
    DEFAULT_CSS = """
    JobDetail { height: 1fr; }
    JobDetail #job-title { height: auto; }
    JobDetail #job-bar { height: 1; }
    JobDetail #job-bar ProgressBar { width: auto; }
    JobDetail #job-bar Bar { width: 30; }
    JobDetail #job-stats { height: auto; color: $text-muted; }
    JobDetail #job-panes { height: 1fr; min-height: 6; }
    JobDetail LossPlot { width: 1fr; }
    JobDetail Log { width: 1fr; border-left: vkey $primary-darken-2; }
    """

    def compose(self) -> ComposeResult:
        yield Static("Select a job.", id="job-title")
        with Horizontal(id="job-bar"):
            yield ProgressBar(total=100, show_eta=False, id="job-progress")
            yield Static("", id="job-eta")
        yield Static("", id="job-stats")
        with Horizontal(id="job-panes"):
            yield LossPlot(id="job-loss")
            yield Log(max_lines=LOG_LINES, id="job-log")

    def show_job(self, job: Json, now: float) -> None:
        """A fresh job (on selection or a snapshot event): title, progress, and the losses it recorded."""
        self.job, self.now = dict(job), now
        self._title()
        self.query_one("#job-loss", LossPlot).reset(job.get("result", {}).get("losses"))
        self.show_progress(job.get("progress", {}), job["state"])

    def _title(self) -> None:
        job = self.job
        shown = {k: v for k, v in job.get("params", {}).items() if v is not None and not isinstance(v, dict)}
        params = escape(", ".join(f"{k}={v}" for k, v in shown.items()))
        started = job.get("started_at")
        ran = fmt.duration((job.get("finished_at") or self.now) - started) if started else "not started"
        error = f"\n[red]{escape(job['error'])}[/]" if job.get("error") else ""
        self.query_one("#job-title", Static).update(
            f"[b]{job['id']}[/b] {job['type']} · [b]{job['state']}[/b] · ran {ran} · attempts {job.get('attempts', 0)}"
            f"\n[dim]{params}[/dim]{error}")

    def show_progress(self, progress: Json, state: str | None = None) -> None:
        share = fmt.fraction(progress)
        bar = self.query_one("#job-progress", ProgressBar)
        if share is not None:
            bar.update(total=100, progress=100 * share)
        elif state == "succeeded":
            bar.update(total=100, progress=100)
        else:
            bar.update(total=None)  # indeterminate: the worker reports a phase, not steps
        eta = progress.get("eta_s")
        self.query_one("#job-eta", Static).update(f"  ETA {fmt.duration(eta)}" if eta is not None else "")
        # The ETA already stands beside the bar.
        self.query_one("#job-stats", Static).update(fmt.progress_line({**progress, "eta_s": None}))
        if progress.get("loss") is not None and progress.get("step") is not None:
            self.query_one("#job-loss", LossPlot).add(int(progress["step"]), float(progress["loss"]))

    def set_state(self, state: str, error: str = "") -> None:
        self.job.update(state=state, error=error or self.job.get("error", ""))
        self._title()

    def set_log(self, text: str) -> None:
        log = self.query_one("#job-log", Log)
        log.clear()
        log.write_lines(text.splitlines()[-LOG_LINES:])

    def add_log(self, line: str) -> None:
        self.query_one("#job-log", Log).write_line(line)
