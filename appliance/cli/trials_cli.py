"""`slm-appliance deploy shadow ...` and `deploy canary ...`: trying a candidate deployment on a live one's
traffic before it takes over, through the daemon's API (`/api/v1/deployments/{name}/trials`, `shadow`, `canary`).

A shadow answers a sample of the live requests in the background (never returned to the apps) and each pair is
compared; a canary serves a sticky share of the keys, watched against the live side by the live watch, which
aborts it on its own when it does worse past the thresholds (the deployment policy's `watch`)."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli.output import print_json
from appliance.cli.remote import add_client_options, print_switch
from appliance.cli.trials_output import print_canary, print_pairs, print_shadow
from appliance.client import ApiError, DaemonClient
from appliance.client.calls import shadow_gate

EPILOG = """examples:
  slm-appliance deploy create my-model-v2 --name my-model-next     the candidate, beside the live one
  slm-appliance deploy shadow set my-model --candidate my-model-next --sample-rate 0.2
  slm-appliance deploy shadow show my-model          agreement, exact rate, chrF, deltas, histogram
  slm-appliance deploy shadow pairs my-model --limit 5   the worst disagreements (redacted)
  slm-appliance deploy switch my-model my-model-v2 --shadow-gate-min-agreement 0.8 --shadow-gate-min-pairs 200
  slm-appliance deploy canary start my-model --candidate my-model-next --weight 0.05
  slm-appliance deploy canary show my-model          both sides' figures and the live watch's checks
  slm-appliance deploy canary promote my-model       switch to the candidate's model, end the canary
  slm-appliance deploy canary abort my-model --reason "latency"

The live watch's thresholds (window_s, min_requests, max_error_rate_increase, max_p95_ratio,
max_block_rate_increase, max_thumbs_down_increase, min_feedback, auto_rollback) come from the hardware profile;
a deployment overrides them in its policy's [watch] table (slm-appliance deploy policy set).
"""
SHADOW = """A shadow: another deployment (the candidate) also answers a sample of this deployment's requests, in the
background, never returned to the apps nor delaying them. Each pair is compared: exact match, chrF,
embedding cosine, length and latency deltas, refusals; `agreement` (0 to 1) is what the shadow gate of a
switch judges."""
CANARY = """A canary: a sticky share of the keys (`--weight`) is served by the candidate deployment, watched
against the live side over a sliding window: error rate, p95 latency, guardrail blocks and thumbs down. A
regression past the thresholds aborts it on its own (auto_rollback), audited with the figures."""


def _parser(sub: Any, name: str, text: str, description: str) -> Any:
    return sub.add_parser(name, help=text, description=description, epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_shadow(dsub: Any) -> list[Any]:
    shadow = _parser(dsub, "shadow", "a candidate answering a sample of NAME's requests in the background", SHADOW)
    ssub = shadow.add_subparsers(dest="trial_action", required=True, metavar="ACTION")
    put = ssub.add_parser("set", help="shadow NAME with a candidate deployment (replaces any shadow)")
    put.add_argument("name")
    put.add_argument("--candidate", required=True, help="the deployment serving the candidate version")
    put.add_argument("--sample-rate", type=float, default=0.1, help="share of NAME's requests it also answers, "
                                                                    "0 to 1 (default 0.1)")
    ssub.add_parser("clear", help="stop shadowing NAME (its pairs go with it)").add_argument("name")
    ssub.add_parser("show", help="the shadow's figures: pairs, agreement, exact rate, chrF, cosine, deltas, "
                                 "refusals, a histogram of the agreement").add_argument("name")
    pairs = ssub.add_parser("pairs", help="the pairs the candidate agreed with least, worst first (redacted)")
    pairs.add_argument("name")
    pairs.add_argument("--limit", type=int, default=10, help="how many (default 10, at most 500)")
    return list(ssub.choices.values())


def _add_canary(dsub: Any) -> list[Any]:
    canary = _parser(dsub, "canary", "a candidate serving a share of NAME's keys, under the live watch", CANARY)
    csub = canary.add_subparsers(dest="trial_action", required=True, metavar="ACTION")
    start = csub.add_parser("start", help="send a sticky share of NAME's keys to a candidate deployment")
    start.add_argument("name")
    start.add_argument("--candidate", required=True, help="the deployment serving the candidate version")
    start.add_argument("--weight", type=float, default=0.05, help="share of the keys, between 0 and 1 "
                                                                  "(default 0.05)")
    csub.add_parser("show", help="the canary, both sides' figures side by side and the live watch's checks"
                    ).add_argument("name")
    promote = csub.add_parser("promote", help="serve the candidate's model under NAME (a switch behind the eval "
                                              "gate), then end the canary")
    promote.add_argument("name")
    promote.add_argument("--golden", help="golden set JSONL under an import root (default as for switch)")
    promote.add_argument("--force", action="store_true", help="switch even if the eval gate finds a regression")
    promote.add_argument("--reason", help="why (kept in the history and the audit log)")
    promote.add_argument("--shadow-gate-min-agreement", type=float, metavar="X", help="also require NAME's shadow, "
                         "when it is the candidate, to agree at least X on average")
    promote.add_argument("--shadow-gate-min-pairs", type=int, metavar="N", help="... over at least N pairs")
    abort = csub.add_parser("abort", help="every key back on the live version at once")
    abort.add_argument("name")
    abort.add_argument("--reason", default="", help="why (kept in the audit log)")
    return list(csub.choices.values())


def add_trial_commands(dsub: Any) -> None:
    add_client_options([*_add_shadow(dsub), *_add_canary(dsub)])


def _promote(args: argparse.Namespace, client: DaemonClient) -> Any:
    """The switch request when an option overrides the default one (the candidate's model, as it is)."""
    gate = shadow_gate(args.shadow_gate_min_agreement, args.shadow_gate_min_pairs)
    if not (args.golden or args.force or args.reason or gate):
        return client.promote_canary(args.name)
    canary = client.trials(args.name).get("canary")
    if not canary:
        raise ApiError("No canary", f"deployment {args.name!r} has no canary")
    body = {"model": client.deployment(canary["candidate"])["model"], "golden": args.golden, "force": args.force,
            "reason": args.reason, "shadow_gate": gate}
    return client.promote_canary(args.name, body)


def _shadow(args: argparse.Namespace, client: DaemonClient) -> None:
    if args.trial_action == "pairs":
        pairs = client.shadow_pairs(args.name, args.limit)
        print_json(pairs) if args.json else print_pairs(args.name, pairs)
        return
    if args.trial_action == "set":
        settings = client.set_shadow(args.name, args.candidate, args.sample_rate)
        print_json(settings) if args.json else print(f"{args.name}: shadow {settings['candidate']} on "
                                                     f"{100 * settings['sample_rate']:g}% of the requests")
        return
    if args.trial_action == "clear":
        client.clear_shadow(args.name)
        if not args.json:
            print(f"{args.name}: shadow cleared")
            return  # --json: the trials after, as for show
    view = client.trials(args.name)
    print_json(view) if args.json else print_shadow(view)


def _canary(args: argparse.Namespace, client: DaemonClient) -> None:
    if args.trial_action == "promote":
        result = _promote(args, client)
        print_json(result) if args.json else print_switch(result)
        return
    if args.trial_action == "start":
        state = client.start_canary(args.name, args.candidate, args.weight)
        if args.json:
            print_json(state)
        else:
            print(f"{args.name}: canary {state['candidate']} on {100 * state['weight']:g}% of the keys, watched "
                  "against the live side")
        return
    if args.trial_action == "abort":
        view = client.abort_canary(args.name, args.reason)
        print_json(view) if args.json else print(f"{args.name}: canary aborted; every key is on the live version")
        return
    view = client.trials(args.name)
    print_json(view) if args.json else print_canary(view)


def run_trials(args: argparse.Namespace, client: DaemonClient) -> int:
    """`deploy shadow ...` and `deploy canary ...`; ApiError for the caller to print."""
    _shadow(args, client) if args.action == "shadow" else _canary(args, client)
    return 0
