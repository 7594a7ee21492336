"""A deployment's trials in the Serving screen: its shadow, its canary and the live watch's latest verdict as
one block of text (shown only when there is one of them), and the dialog listing the shadow's worst pairs."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from appliance.client.trials import (
    canary_heading,
    fixed,
    pair_heading,
    prompt_of,
    seconds,
    shadow_heading,
    share,
    sparkline,
)
from tui import format as fmt
from tui.widgets.modals import MODAL_CSS

Json = dict[str, Any]
# The verdict's two sides as the operator knows them.
SIDE_NAMES = {"canary": ("canary", "live"), "switch": ("new", "before")}


def has_trials(view: Json | None) -> bool:
    return bool(view) and any(view.get(part) for part in ("shadow", "canary", "watch"))  # type: ignore[union-attr]


def _shadow(view: Json) -> list[str]:
    shadow, summary = view["shadow"], view.get("shadow_summary") or {}
    lines = [f"  [b]{fmt.literal(shadow_heading(shadow))}[/b]"]
    if not summary.get("pairs"):
        return [*lines, "    [dim]no pairs yet[/dim]"]
    lines.append(f"    {summary['pairs']} pairs · agreement {fixed(summary.get('agreement_mean'))} · "
                 f"exact {share(summary.get('exact_rate'))}")
    bars = sparkline(summary.get("histogram") or [])
    return [*lines, f"    [dim]agreement 0[/dim] [$accent]{bars}[/] [dim]1[/dim]"]


def _side(side: Json) -> list[str]:
    return [str(side["requests"]), share(side.get("error_rate")), seconds(side.get("p95_latency_s")),
            share(side.get("block_rate")), f"{side['thumbs_down']}/{side['thumbs_up'] + side['thumbs_down']}"]


def _verdict(verdict: Json, watching: bool) -> list[str]:
    state = "[b red]regressed[/]" if verdict["regressed"] else "[green]no regression[/]"
    if verdict.get("rolled_back"):
        state += " · rolled back"
    ended = "" if watching else " [dim](ended)[/dim]"
    candidate, baseline = SIDE_NAMES.get(verdict["kind"], ("candidate", "baseline"))
    lines = [f"  [b]{verdict['kind']} watch[/b]{ended}: {state}",
             f"    [dim]{'':<12}[/dim]{candidate:>9} {baseline:>9}"]
    labels = ("requests", "errors", "p95", "blocked", "thumbs down")
    for label, ours, theirs in zip(labels, _side(verdict["candidate"]), _side(verdict["baseline"]), strict=True):
        lines.append(f"    [dim]{label:<12}[/dim]{ours:>9} {theirs:>9}")
    lines += [f"    [red]{fmt.literal(reason)}[/]" for reason in verdict.get("reasons") or []]
    return lines


def trials_text(view: Json, now: float) -> str:
    """Rich text of a TrialsView: the shadow (candidate, pairs, agreement, exact rate, the agreement's histogram),
    the canary (candidate, weight, age), the watch's verdict with both sides side by side and its reasons."""
    lines = ["[b $accent]Trials[/]"]
    if view.get("shadow"):
        lines += _shadow(view)
    if canary := view.get("canary"):
        lines.append(f"  [b]{fmt.literal(canary_heading(canary))}[/b] · {fmt.ago(canary['started_at'], now)}")
    if verdict := view.get("watch"):
        lines += _verdict(verdict, bool(view.get("watching")))
    return "\n".join(lines)


def pairs_text(pairs: list[Json], now: float) -> str:
    """Each pair: its figures, then the (redacted) question and both answers."""
    if not pairs:
        return "No pairs yet."
    blocks = []
    for number, pair in enumerate(pairs, 1):
        blocks.append("\n".join([
            f"[b]#{number}[/b] {fmt.literal(pair_heading(pair))} · {fmt.ago(pair['created_at'], now)}",
            f"  [dim]asked[/dim]      {fmt.literal(prompt_of(pair))}",
            f"  [dim]live[/dim]       {fmt.literal(pair['live_answer'])}",
            f"  [dim]candidate[/dim]  {fmt.literal(pair['candidate_answer'])}"]))
    return "\n\n".join(blocks)


class ShadowPairsModal(ModalScreen[None]):
    """The pairs a shadow agreed with least, worst first, as the daemon stored them (redacted)."""

    DEFAULT_CSS = MODAL_CSS.format(name="ShadowPairsModal") + """
    ShadowPairsModal > Vertical { width: 110; height: 90%; }
    ShadowPairsModal #pairs-box { height: 1fr; margin: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, deployment: str, candidate: str, pairs: list[Json], now: float) -> None:
        super().__init__()
        self.deployment, self.candidate, self.pairs, self.now = deployment, candidate, pairs, now

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Worst shadow pairs: {fmt.literal(self.deployment)} ← {fmt.literal(self.candidate)}",
                         classes="title")
            yield Static("Worst agreement first; redacted as the deployment's capture redacts.", classes="hint")
            with VerticalScroll(id="pairs-box"):
                yield Static(pairs_text(self.pairs, self.now), id="pairs")
            with Horizontal(classes="buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#pairs-box", VerticalScroll).focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
