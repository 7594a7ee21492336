"""The live watch: a new version is compared with the one it replaces on live traffic, and rolled back on its own
when it does worse past a threshold.

- A canary (`watch_canary`): the candidate's arm against the live arm over the same sliding window (`window_s`),
  until the canary is promoted or aborted (`end`).
- After a switch (`watch_switch`): the new version's arm since the switch against the previous version's
  baseline, frozen at the switch (its last `window_s` before it; its thumbs over that span), for `window_s`.

`evaluate()` (every `interval_s` from `start()`, or called directly with an injected clock in tests) gives each
watch a `Verdict` (`verdict.judge`). A regression with `auto_rollback` calls the injected async
`rollback(deployment, verdict)` once per watch, counts `slm_live_watch_rollbacks_total{deployment,reason}`
(reason: the first exceeded rule) and logs the figures; a successful rollback ends the watch.
`slm_live_watch_regressed{deployment}` is 1 while an active watch's latest verdict is a regression (a watch that
only alerts, or whose rollback failed) and 0 otherwise. The thumbs queries run off the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from appliance.trials.canary import Outcomes, SideFigures, Thumbs
from appliance.trials.verdict import Kind, Verdict, WatchSettings, judge

log = logging.getLogger(__name__)
Rollback = Callable[[str, Verdict], Awaitable[None]]
Feedback = Callable[[str, float, float], Thumbs]  # (model_id, since, until): a store read, run off the loop


@dataclass(frozen=True)
class ArmRef:
    """One side of a watch: its arm in `Outcomes`, and the model whose feedback counts for it ("" none)."""

    arm: str
    model_id: str = ""


@dataclass
class Watch:
    deployment: str
    kind: Kind
    candidate: ArmRef
    baseline: ArmRef
    settings: WatchSettings
    started_at: float
    baseline_figures: SideFigures | None = None  # a switch's: frozen when it happened
    rolled_back: bool = False
    rollback_failed: bool = False

    @property
    def ends_at(self) -> float | None:
        return self.started_at + self.settings.window_s if self.kind == "switch" else None


class LiveWatch:
    """Construct cheaply; `start()` inside the running event loop for the periodic evaluation."""

    def __init__(self, outcomes: Outcomes, rollback: Rollback, registry: CollectorRegistry, *,
                 feedback: Feedback | None = None, interval_s: float = 15.0) -> None:
        self.outcomes, self.interval_s = outcomes, interval_s
        self.clock = outcomes.clock
        self._rollback, self._feedback = rollback, feedback
        self._watches: dict[str, Watch] = {}
        self._last: dict[str, Verdict] = {}
        self._task: asyncio.Task[None] | None = None
        self.rollbacks = Counter("slm_live_watch_rollbacks", "Automatic rollbacks by the live watch, by the first "
                                 "rule exceeded", ["deployment", "reason"], registry=registry)
        self.regressed = Gauge("slm_live_watch_regressed", "1 while a watched deployment's latest verdict is a "
                               "regression not (yet) rolled back", ["deployment"], registry=registry)

    # -- watches --------------------------------------------------------------------------------------------
    def watch_canary(self, deployment: str, live: ArmRef, candidate: ArmRef, settings: WatchSettings) -> Watch:
        """Watch a canary's candidate against its live side (replaces any watch of `deployment`)."""
        return self._begin(Watch(deployment, "canary", candidate, live, settings, self.clock()))

    def watch_switch(self, deployment: str, previous: ArmRef, new: ArmRef, settings: WatchSettings) -> Watch:
        """Watch the version a switch just put live against the previous one's baseline, frozen now: call it
        right after the switch commits (O(window) in memory, no I/O)."""
        now = self.clock()
        baseline = self.outcomes.figures(deployment, previous.arm, now - settings.window_s, now)
        return self._begin(Watch(deployment, "switch", new, previous, settings, now, baseline_figures=baseline))

    def _begin(self, watch: Watch) -> Watch:
        self._watches[watch.deployment] = watch
        self.regressed.labels(watch.deployment).set(0)
        return watch

    def end(self, deployment: str) -> Verdict | None:
        """Stop watching `deployment` (canary promoted or aborted, deployment deleted); its latest verdict."""
        if self._watches.pop(deployment, None) is not None:
            self.regressed.labels(deployment).set(0)
        return self._last.get(deployment)

    def watching(self) -> list[Watch]:
        return [self._watches[name] for name in sorted(self._watches)]

    def verdict(self, deployment: str) -> Verdict | None:
        """The latest verdict on `deployment` (kept after its watch ended)."""
        return self._last.get(deployment)

    # -- evaluation -----------------------------------------------------------------------------------------
    async def evaluate(self) -> list[Verdict]:
        """One pass over the active watches: a verdict each, rollbacks where due."""
        verdicts = []
        for watch in list(self._watches.values()):
            if watch.rolled_back:
                continue
            try:
                verdicts.append(await self._evaluate(watch))
            except Exception:
                log.exception("live watch evaluation failed", extra={"deployment": watch.deployment})
        return verdicts

    async def _evaluate(self, watch: Watch) -> Verdict:
        verdict = await self._verdict(watch)
        name = watch.deployment
        if self._watches.get(name) is not watch:  # ended while its thumbs were read
            return verdict
        self._last[name] = verdict
        self.regressed.labels(name).set(1 if verdict.regressed else 0)
        if verdict.regressed and watch.settings.auto_rollback:
            return await self._roll_back(watch, verdict)
        if verdict.regressed:
            log.warning("live watch: regression (auto rollback off)",
                        extra={"deployment": name, **verdict.figures()})
        ends_at = watch.ends_at
        if ends_at is not None and verdict.until >= ends_at:
            self.end(name)  # watched its whole window without a regression
        return verdict

    async def _verdict(self, watch: Watch) -> Verdict:
        now, window = self.clock(), watch.settings.window_s
        if watch.kind == "canary":
            since, until = max(watch.started_at, now - window), now
            base_since, base_until = since, until
            baseline = self.outcomes.figures(watch.deployment, watch.baseline.arm, since, until)
        else:
            since, until = watch.started_at, min(now, watch.started_at + window)
            base_since, base_until = since - window, since
            baseline = watch.baseline_figures or SideFigures()
        candidate = self.outcomes.figures(watch.deployment, watch.candidate.arm, since, until)
        candidate = await self._with_thumbs(candidate, watch.candidate, since, until)
        baseline = await self._with_thumbs(baseline, watch.baseline, base_since, base_until)
        checks, reasons = judge(watch.settings, candidate, baseline)
        return Verdict(deployment=watch.deployment, kind=watch.kind, candidate_arm=watch.candidate.arm,
                       baseline_arm=watch.baseline.arm, since=since, until=until, candidate=candidate,
                       baseline=baseline, checks=checks, regressed=bool(reasons), reasons=reasons)

    async def _with_thumbs(self, figures: SideFigures, side: ArmRef, since: float, until: float) -> SideFigures:
        if self._feedback is None or not side.model_id:
            return figures
        counted = await asyncio.to_thread(self._feedback, side.model_id, since, until)
        return figures.model_copy(update={"thumbs_up": counted.up, "thumbs_down": counted.down})

    async def _roll_back(self, watch: Watch, verdict: Verdict) -> Verdict:
        watch.rolled_back = True  # before the await: once per watch, whatever else evaluates meanwhile
        verdict = verdict.model_copy(update={"rolled_back": True})
        name = watch.deployment
        self._last[name] = verdict
        self.rollbacks.labels(name, verdict.reason).inc()
        log.error("live watch: rolling back", extra={"deployment": name, **verdict.figures()})
        try:
            await self._rollback(name, verdict)
        except Exception:
            watch.rollback_failed = True  # not retried; the regressed gauge stays 1 for the alert
            log.exception("live watch: the rollback failed", extra={"deployment": name})
        else:
            if self._watches.get(name) is watch:
                self.end(name)
        return verdict

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-watch")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.evaluate()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
