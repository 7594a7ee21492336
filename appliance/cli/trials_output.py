"""What the shadow and canary commands print for people."""

from __future__ import annotations

import textwrap
import time
from typing import Any

from appliance.client.trials import (
    RULES,
    canary_heading,
    check_text,
    histogram_rows,
    pair_heading,
    prompt_of,
    shadow_heading,
    shadow_rows,
    side_rows,
    verdict_heading,
)

Json = dict[str, Any]
WIDTH = 100


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "—"


def print_shadow(view: Json) -> None:
    """The shadow and its figures, or how to set one."""
    name, shadow, summary = view["deployment"], view.get("shadow"), view.get("shadow_summary")
    if shadow is None:
        print(f"{name}: no shadow (slm-appliance deploy shadow set {name} --candidate DEPLOYMENT)")
        return
    print(f"{name}: {shadow_heading(shadow)}")
    if summary is None or not summary["pairs"]:
        print("  no pairs yet: they come with the live requests the sample picks")
        return
    for label, text in shadow_rows(summary):
        print(f"  {label:<10} {text}")
    print(f"  {'since':<10} {_when(summary.get('since'))}")
    print("  agreement histogram")
    for row in histogram_rows(summary.get("histogram") or []):
        print(f"    {row}")


def _block(label: str, text: str) -> list[str]:
    """`label` then `text` wrapped under it, indented."""
    lines = textwrap.wrap(" ".join(text.split()) or "(empty)", WIDTH - 14) or [""]
    return [f"  {label:<11} {lines[0]}", *(f"  {'':<11} {line}" for line in lines[1:])]


def print_pairs(name: str, pairs: list[Json]) -> None:
    """The worst pairs, each with its figures, the (redacted) question and both answers."""
    if not pairs:
        print(f"{name}: no shadow pairs")
        return
    for number, pair in enumerate(pairs, 1):
        print(f"#{number} {_when(pair['created_at'])} · {pair_heading(pair)}")
        for line in (*_block("asked", prompt_of(pair)), *_block("live", pair["live_answer"]),
                     *_block("candidate", pair["candidate_answer"])):
            print(line)
        if number < len(pairs):
            print()


def print_verdict(verdict: Json, watching: bool) -> None:
    """Both sides' figures side by side, then each rule's check and the reasons."""
    ended = "" if watching else "; the watch has ended"
    print(f"{verdict_heading(verdict)} ({_when(verdict['since'])} to {_when(verdict['until'])}{ended})")
    print(f"  candidate {verdict['candidate_arm']} · baseline {verdict['baseline_arm']}")
    print(f"  {'':<16} {'CANDIDATE':>18} {'BASELINE':>18}")
    for label, candidate, baseline in side_rows(verdict):
        print(f"  {label:<16} {candidate:>18} {baseline:>18}")
    print("  checks")
    for check in verdict["checks"]:
        print(f"    {RULES.get(check['rule'], check['rule']):<17} {check_text(check)}")
    for reason in verdict.get("reasons") or []:
        print(f"  regressed: {reason}")


def print_canary(view: Json) -> None:
    """The canary and the live watch's latest verdict (a switch's watch too, when one runs)."""
    name, canary, verdict = view["deployment"], view.get("canary"), view.get("watch")
    if canary is not None:
        print(f"{name}: {canary_heading(canary)}, since {_when(canary['started_at'])}")
    else:
        print(f"{name}: no canary (slm-appliance deploy canary start {name} --candidate DEPLOYMENT --weight 0.05)")
    if verdict is None:
        if canary is not None:
            print("  no verdict yet: the live watch judges every few seconds")
        return
    print_verdict(verdict, view.get("watching", False))
