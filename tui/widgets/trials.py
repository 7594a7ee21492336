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

from appliance.client.trials import fixed, pair_heading, prompt_of, seconds, share, sparkline
from tui import format as fmt
from tui.widgets.modals import MODAL_CSS

Json = dict[str, Any]
# The verdict's two sides as the operator knows them.
SIDE_NAMES = {"canary": ("canary", "live"), "switch": ("new", "before")}


def has_trials(view: Json | None) -> bool:
    return bool(view) and any(view.get(part) for part in ("shadow", "canary", "watch"))  # type: ignore[union-attr]


def _shadow(view: Json) -> list[str]:
    shadow, summary = view["shadow"], view.get("shadow_summary") or {}
    lines = [f"  [b]shadow {fmt.literal(shadow['candidate'])}[/b] · {share(shadow['sample_rate'], 0)} sampled"]
    if not summary.get("pairs"):
        return [*lines, "    [dim]no pairs yet[/dim]"]
    bars = sparkline(summary.get("histogram") or [])
    return [*lines, f"    {summary['pairs']} pairs · exact {share(summary.get('exact_rate'))}",
            f"    agreement {fixed(summary.get('agreement_mean'))}  [dim]0[/dim] [$accent]{bars}[/] [dim]1[/dim]"]


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
    """Rich text of a TrialsView, in lines that fit the detail's 40 columns on an 80-column terminal: the shadow
    (candidate, sample, pairs, exact rate, mean agreement and its histogram), the canary (candidate, weight, age),
    the watch's verdict with both sides side by side and its reasons."""
    lines = ["[b $accent]Trials[/]"]
    if view.get("shadow"):
        lines += _shadow(view)
    if canary := view.get("canary"):
        lines += [f"  [b]canary {fmt.literal(canary['candidate'])}[/b] · {share(canary['weight'], 0)} of keys",
                  f"    started {fmt.ago(canary['started_at'], now)}"]
    if verdict := view.get("watch"):
        lines += _verdict(verdict, bool(view.get("watching")))
    return "\n".join(lines)


def pair_rows(pair: Json) -> list[tuple[str, str]]:
    """(label, text) rows of one pair: the (redacted) question, then both answers."""
    return [("asked", prompt_of(pair)), ("live", pair["live_answer"]), ("candidate", pair["candidate_answer"])]


class ShadowPairsModal(ModalScreen[None]):
    """The pairs a shadow agreed with least, worst first, as the daemon stored them (redacted)."""

    DEFAULT_CSS = MODAL_CSS.format(name="ShadowPairsModal") + """
    ShadowPairsModal > Vertical { width: 110; height: 90%; }
    ShadowPairsModal #pairs-box { height: 1fr; }
    ShadowPairsModal .pair-heading { margin: 1 0 0 0; }
    ShadowPairsModal .pair-row { height: auto; }
    ShadowPairsModal .pair-label { width: 13; padding: 0 0 0 2; color: $text-muted; }
    ShadowPairsModal .pair-text { width: 1fr; }
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
                if not self.pairs:
                    yield Static("No pairs yet.", classes="pair-heading")
                for number, pair in enumerate(self.pairs, 1):
                    yield Static(f"[b]#{number}[/b] {fmt.literal(pair_heading(pair))} · "
                                 f"{fmt.ago(pair['created_at'], self.now)}", classes="pair-heading")
                    for label, text in pair_rows(pair):
                        with Horizontal(classes="pair-row"):
                            yield Static(label, classes="pair-label")
                            yield Static(fmt.literal(text.strip()) or "[dim](empty)[/dim]", classes="pair-text")
            with Horizontal(classes="buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#pairs-box", VerticalScroll).focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
