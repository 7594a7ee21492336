"""Trials of a new version on live traffic (issue 25): shadow traffic and its gate, the canary split, the live
watch with automatic rollback.

The request path calls `ShadowSettings.wants()` and `ShadowRunner.offer()` (never blocks, never raises),
`Canary.side_for(key_id)` and `Outcomes.record(...)` (O(1), no I/O). The deployment service calls the shadow gate
(`gate.check`) before a switch and `LiveWatch.watch_switch` after it, `LiveWatch.watch_canary`/`end` for a
canary. The daemon starts a `ShadowRunner` and a `LiveWatch`.
"""

from appliance.trials.canary import Canary, Outcomes, SideFigures, SideStats, Thumbs, arm_of, side_for, thumbs
from appliance.trials.compare import Answer, PairFigures, compare, normalise
from appliance.trials.gate import ShadowGate, ShadowGateFailed, check, judge, shadow_gate
from appliance.trials.models import ShadowPair, ShadowRequest, ShadowSettings, ShadowSummary
from appliance.trials.shadow import ShadowRunner
from appliance.trials.verdict import Check, Verdict, WatchSettings, merge
from appliance.trials.watch import ArmRef, LiveWatch, Watch

__all__ = [
    "Answer",
    "ArmRef",
    "Canary",
    "Check",
    "LiveWatch",
    "Outcomes",
    "PairFigures",
    "ShadowGate",
    "ShadowGateFailed",
    "ShadowPair",
    "ShadowRequest",
    "ShadowRunner",
    "ShadowSettings",
    "ShadowSummary",
    "SideFigures",
    "SideStats",
    "Thumbs",
    "Verdict",
    "Watch",
    "WatchSettings",
    "arm_of",
    "check",
    "compare",
    "judge",
    "merge",
    "normalise",
    "shadow_gate",
    "side_for",
    "thumbs",
]
