"""The trials as one daemon run holds them: the shadow runner, the outcomes every request records, the live
watch, the metrics registry they report to, and the profile's watch defaults. The deployment service starts and
stops them; the gateway offers to the runner and records outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from appliance.trials.canary import Outcomes
from appliance.trials.shadow import ShadowRunner
from appliance.trials.verdict import WatchSettings
from appliance.trials.watch import LiveWatch


@dataclass
class TrialsRuntime:

    runner: ShadowRunner
    outcomes: Outcomes
    watch: LiveWatch
    registry: CollectorRegistry  # the daemon's metrics (the gateway's too)
    defaults: WatchSettings = field(default_factory=WatchSettings)
