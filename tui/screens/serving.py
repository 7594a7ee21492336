"""Serving: deployments, start/stop, deploy/delete, promote an adapter or roll back, request metrics, log; a
deployment's trials (shadow, canary, the live watch's verdict), its shadow's worst pairs, aborting its canary."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Log, Static

from appliance.client import ApiError
from appliance.client.policy import policy_lines
from tui.metrics import DeploymentMetrics, parse_metrics
from tui.screens.base import ApplianceScreen
from tui.widgets.modals import ConfirmModal, FormField, FormModal
from tui.widgets.tables import selected_key, sync_rows
from tui.widgets.trials import ShadowPairsModal, has_trials, trials_text

Json = dict[str, Any]
PAIRS = 20  # worst shadow pairs listed


def _seconds(value: float | None) -> str:
    return "—" if value is None else (f"≤{value * 1000:.0f} ms" if value < 1 else f"≤{value:g} s")


def metrics_text(m: DeploymentMetrics | None) -> str:
    if m is None:
        return "[dim]no requests yet[/dim]"
    total = sum(m.requests.values())
    by_status = ", ".join(f"{k} {v:.0f}" for k, v in sorted(m.requests.items())) or "none"
    return (f"requests {total:.0f} ({by_status})\n"
            f"latency p50 {_seconds(m.latency.quantile(0.5))} · p95 {_seconds(m.latency.quantile(0.95))} · "
            f"TTFT p50 {_seconds(m.ttft.quantile(0.5))}\n"
            f"tokens in {m.tokens.get('in', 0):.0f} · out {m.tokens.get('out', 0):.0f} · "
            f"in flight {m.inflight:.0f} · queued {m.queue_depth:.0f} · restarts {m.restarts:.0f}")


def policy_text(version: Json) -> str:
    """The policy in force, read-only: version, limits, deny rule names, redaction, guard, capture."""
    (_, heading), *rows = policy_lines(version)
    return "\n".join([f"[b $accent]Policy[/] {escape(heading)}",
                      *(f"  [dim]{label:<8}[/dim] {escape(text)}" for label, text in rows)])


class ServingScreen(ApplianceScreen):
    MODE = "serving"
    POLL = True
    CSS_PATH = "serving.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        *ApplianceScreen.BINDINGS,
        Binding("n", "deploy", "Deploy"),
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("p", "promote", "Promote adapter"),
        Binding("b", "rollback", "Rollback"),
        Binding("d", "delete", "Delete", show=False),
        # Offered only while the selected deployment has a shadow / a canary (check_action).
        Binding("w", "shadow_pairs", "Shadow pairs"),
        Binding("a", "abort_canary", "Abort canary"),
    ]
    trials: Json | None = None  # the selected deployment's TrialsView (None: not fetched, or an older daemon)

    class Listed(Message):
        def __init__(self, deployments: list[Json], metrics: dict[str, DeploymentMetrics], models: list[Json],
                     log: str, policy: Json | None = None, trials: Json | None = None) -> None:
            super().__init__()
            self.deployments, self.metrics, self.models, self.log = deployments, metrics, models, log
            self.policy = policy  # the selected deployment's, when it has one set
            self.trials = trials  # the selected deployment's

    class PairsFetched(Message):
        def __init__(self, deployment: str, candidate: str, pairs: list[Json]) -> None:
            super().__init__()
            self.deployment, self.candidate, self.pairs = deployment, candidate, pairs

    def body(self) -> ComposeResult:
        yield DataTable(id="deployments", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="lower"):
            with VerticalScroll(id="info"):
                yield Static("Select a deployment.", id="deployment")
                yield Static("", id="trials")
                yield Static("Requests", classes="section")
                yield Static("", id="metrics")
                yield Static("", id="policy")
            with Vertical(id="log-box"):
                yield Static("Backend log", classes="section")
                yield Log(max_lines=300, id="log")

    def on_mount(self) -> None:
        super().on_mount()
        self.deployments: dict[str, Json] = {}
        self.metrics: dict[str, DeploymentMetrics] = {}
        self.model_names: list[str] = []
        self.policy: Json | None = None
        self.query_one("#deployments", DataTable).add_columns("name", "model", "backend", "state", "restarts")

    async def load(self) -> None:
        deployments, text, models = await asyncio.gather(self.api.deployments(), self.api.metrics(),
                                                         self.api.models())
        table = self.query_one("#deployments", DataTable)
        name = selected_key(table) or (deployments[0]["name"] if deployments else None)
        log = await self.api.deployment_logs(name, 100) if name else ""
        chosen: Json = next((d for d in deployments if d["name"] == name), {})
        policy = await self.api.policy(chosen["name"]) if chosen.get("policy_version") else None
        trials = await self._trials(chosen["name"]) if chosen else None
        self.post_message(self.Listed(deployments, parse_metrics(text), models, log, policy, trials))

    async def _trials(self, name: str) -> Json | None:
        """The deployment's TrialsView; None from a daemon without trials (or when the deployment just went)."""
        try:
            view: Json = await self.api.trials(name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return view

    @on(Listed)
    def show(self, event: Listed) -> None:
        self.deployments = {d["name"]: d for d in event.deployments}
        self.metrics, self.model_names = event.metrics, [m["name"] for m in event.models]
        self.policy, self.trials = event.policy, event.trials
        self.refresh_bindings()
        table = self.query_one("#deployments", DataTable)
        rows = []
        for d in event.deployments:
            style = {"ready": "green", "failed": "red", "stopped": "dim"}.get(d["state"], "yellow")
            rows.append((d["name"], [d["name"], d["model"], d["backend"], f"[{style}]{d['state']}[/]",
                                     str(d["restarts"])]))
        sync_rows(table, rows)
        self._show_selected(event.log)

    @on(DataTable.RowHighlighted, "#deployments")
    def highlighted(self) -> None:
        self._show_selected(None)

    def _show_selected(self, log: str | None) -> None:
        name = selected_key(self.query_one("#deployments", DataTable))
        d = self.deployments.get(name or "")
        if d is None:
            self.query_one("#deployment", Static).update("No deployments: press [b]n[/b] to serve a model.")
            return
        args = "\n".join(f"  [dim]{k}[/dim] {escape(str(v))}" for k, v in d.get("injected_args", {}).items())
        self.query_one("#deployment", Static).update(
            f"[b]{d['name']}[/b] → {d['model']} on {d['backend']} · wants {d['desired_state']}\n"
            f"{d['state']}: {escape(d['state_message'])}\n{args}")
        self.query_one("#metrics", Static).update(metrics_text(self.metrics.get(d["name"])))
        trials = self._trials_of(d["name"])
        self.query_one("#trials", Static).display = has_trials(trials)
        if trials is not None and has_trials(trials):
            self.query_one("#trials", Static).update(trials_text(trials, self.now()))
        policy = self.policy if self.policy is not None and self.policy["deployment"] == d["name"] else None
        self.query_one("#policy", Static).display = policy is not None
        if policy is not None:
            self.query_one("#policy", Static).update(policy_text(policy))
        if log is not None:
            widget = self.query_one("#log", Log)
            widget.clear()
            widget.write_lines(log.splitlines())
        elif name:
            self.action_reload()  # another deployment: fetch its log

    def _trials_of(self, name: str | None) -> Json | None:
        return self.trials if self.trials is not None and self.trials["deployment"] == name else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The trial keys only while the selected deployment has that trial."""
        if action in ("shadow_pairs", "abort_canary"):
            trials = self._trials_of(selected_key(self.query_one("#deployments", DataTable)))
            return bool(trials and trials.get("shadow" if action == "shadow_pairs" else "canary"))
        return True

    def _selected(self) -> str | None:
        name = selected_key(self.query_one("#deployments", DataTable))
        if name is None:
            self.notify("Select a deployment first", severity="warning")
        return name

    def action_start(self) -> None:
        if name := self._selected():
            self.act(self.api.deployment_action(name, "start"), f"Starting {name}")

    def action_stop(self) -> None:
        if name := self._selected():
            self.act(self.api.deployment_action(name, "stop"), f"Stopped {name}")

    def action_deploy(self) -> None:
        fields = [FormField("model", "Registry model", options=[(n, n) for n in self.model_names]),
                  FormField("name", "Served name (default: the model's)", required=False)]

        def done(values: dict[str, Any] | None) -> None:
            if values:
                self.act(self.api.create_deployment({"model": values["model"], "name": values["name"]}),
                         f"Deploying {values['name'] or values['model']}")

        self.app.push_screen(FormModal("Deploy a model", fields, "Deploy",
                                       note="Backend and parameters come from the hardware profile."), done)

    def action_promote(self) -> None:
        name = self._selected()
        if name is None:
            return
        fields = [FormField("adapter", "Adapter (registry model)", options=[(n, n) for n in self.model_names])]

        def done(values: dict[str, Any] | None) -> None:
            if values:
                self.act(self.api.attach_adapter(name, {"adapter": values["adapter"]}),
                         f"Adapter {values['adapter']} attached to {name}")

        self.app.push_screen(FormModal(f"Promote an adapter on {name}", fields, "Attach"), done)

    def action_rollback(self) -> None:
        if (name := self._selected()) is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.act(self.api.rollback(name), f"Rolled back {name}")

        self.app.push_screen(ConfirmModal(f"Roll {name} back to its previous model?", "Rollback"), done)

    def action_delete(self) -> None:
        if (name := self._selected()) is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.act(self.api.delete_deployment(name), f"Deleted deployment {name}")

        self.app.push_screen(ConfirmModal(f"Stop and remove deployment {name!r}?"), done)

    def action_shadow_pairs(self) -> None:
        name = self._selected()
        shadow = (self._trials_of(name) or {}).get("shadow")
        if name and shadow:
            self._fetch_pairs(name, shadow["candidate"])

    @work(group="pairs", exclusive=True, exit_on_error=False)
    async def _fetch_pairs(self, name: str, candidate: str) -> None:
        pairs = await self.guard(self.api.shadow_pairs(name, PAIRS))
        if pairs is not None:
            self.post_message(self.PairsFetched(name, candidate, pairs))

    @on(PairsFetched)
    def pairs_fetched(self, event: PairsFetched) -> None:
        self.app.push_screen(ShadowPairsModal(event.deployment, event.candidate, event.pairs, self.now()))

    def action_abort_canary(self) -> None:
        name = self._selected()
        canary = (self._trials_of(name) or {}).get("canary")
        if name is None or not canary:
            return
        fields = [FormField("reason", "Reason (kept in the audit log)", required=False)]

        def done(values: dict[str, Any] | None) -> None:
            if values is not None:
                self.act(self.api.abort_canary(name, values["reason"] or ""),
                         f"Canary of {name} aborted: every key is on the live version")

        note = f"Every key goes back to {name} at once; {canary['candidate']} keeps running."
        self.app.push_screen(FormModal(f"Abort the canary of {name}?", fields, "Abort canary", note=note), done)
