"""`slm-appliance review ...` and `captures ...`: the production loop's operator side, through the daemon's API
(`/api/v1/captures`). Captured answers (redacted, with the apps' feedback) wait in a review queue; a reviewer
accepts, edits or rejects each, and exports the accepted ones into a new dataset version for the next
fine-tune. Capture is switched on per deployment by its policy (`deploy policy set`)."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli.jobs_cli import follow, print_report
from appliance.cli.output import print_json
from appliance.cli.policy_cli import read_text
from appliance.cli.remote import add_client_options
from appliance.cli.review_output import (
    moment,
    print_decision,
    print_detail,
    print_export,
    print_queue,
    print_stats,
    print_sweep,
    seconds,
)
from appliance.client import ApiError, DaemonClient
from appliance.client.review import STATES, conversation, parse_conversation, with_answer

REVIEW_EPILOG = """examples:
  slm-appliance review list --rated down            answers the apps rated down
  slm-appliance review show chatcmpl-3f2a...       the redacted conversation, the answer and its feedback
  slm-appliance review accept chatcmpl-3f2a...
  slm-appliance review edit chatcmpl-3f2a... --answer "Restart it with: systemctl restart slm-appliance"
  slm-appliance review reject chatcmpl-3f2a... --note "off topic"
  slm-appliance review export --kind sft --dataset support --base-model smollm2-135m-instruct
"""
KIND_HELP = ("sft: conversations (edited, corrected or accepted answers); preference: prompt/chosen/rejected "
             "pairs (the better answer against the original); kto: prompt/completion/label from the thumbs")
DESCRIPTION = """Captured answers (redacted, with the apps' feedback) wait in a review queue; accept, edit or reject
each, then export the accepted ones into a new dataset version for the next fine-tune. Capture is switched on
per deployment by its policy (slm-appliance deploy policy set NAME --file policy.toml)."""
_DECISIONS = {"accept": "accept it as captured (with the app's correction, if any)",
              "edit": "accept it with a better answer (--answer) or a corrected conversation (--file)",
              "reject": "reject it: never exported", "reopen": "put it back in the queue (pending)"}


def _moment(text: str) -> float:
    try:
        return moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _age(text: str) -> float:
    try:
        return seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_list(rsub: Any) -> None:
    listing = rsub.add_parser("list", help="the review queue, newest first, filtered",
                              epilog="TIME: an age (2h, 7d), a date (2025-06-01) or Unix seconds")
    listing.add_argument("--deployment")
    listing.add_argument("--key-name", help="only what this API key asked (its name; --key is the key you call "
                                            "with)")
    listing.add_argument("--rated", choices=["up", "down"], help="the app's thumbs (1-2 stars is down, 4-5 up)")
    listing.add_argument("--corrected", action="store_true", help="only items the app sent a correction for")
    listing.add_argument("--sampled", action="store_true", help="only items with no feedback (from the sample)")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--since", type=_moment, metavar="TIME", help="captured at or after")
    listing.add_argument("--until", type=_moment, metavar="TIME", help="captured before")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)


def _add_decisions(rsub: Any) -> None:
    rsub.add_parser("show", help="one item: the redacted conversation, the answer, its feedback and review"
                    ).add_argument("id", help="the response id (chatcmpl-...)")
    for action, text in _DECISIONS.items():
        parser = rsub.add_parser(action, help=text)
        parser.add_argument("id", help="the response id (chatcmpl-...)")
        parser.add_argument("--note", default="", help="kept with the decision")
        if action == "edit":
            what = parser.add_mutually_exclusive_group(required=True)
            what.add_argument("--answer", help="the answer it should have given (replaces the last assistant "
                                               "message)")
            what.add_argument("--file", metavar="PATH", help='the whole conversation as JSON: [{"role": ..., '
                              '"content": ...}, ...] ending with the answer; - reads standard input')


def _add_export(rsub: Any) -> None:
    export = rsub.add_parser("export", help="accepted and edited items into a new dataset version (a job)",
                             epilog=KIND_HELP)
    export.add_argument("--kind", choices=["sft", "preference", "kto"], required=True)
    export.add_argument("--dataset", required=True, help="the dataset the export becomes a new version of")
    export.add_argument("--base-model", help="registry model whose chat template counts tokens")
    export.add_argument("--deployment", help="only items of this deployment")
    export.add_argument("--since", type=_moment, metavar="TIME", help="only items captured at or after")
    export.add_argument("--eval-fraction", type=float, default=0.1)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--no-wait", action="store_true", help="return the job without following it")


def add_review_commands(sub: Any) -> None:
    review = sub.add_parser("review", help="review captured answers and export them as a dataset",
                            description=DESCRIPTION, epilog=REVIEW_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    rsub = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_list(rsub)
    _add_decisions(rsub)
    _add_export(rsub)
    captures = sub.add_parser("captures", help="captured answers: purge, retention sweep, writer stats")
    csub = captures.add_subparsers(dest="action", required=True, metavar="ACTION")
    purge = csub.add_parser("purge", help="delete captured items (with their feedback and review)",
                            epilog="Filters combine; at least one. --older-than 0 purges everything.")
    purge.add_argument("--deployment")
    purge.add_argument("--key-name", help="only what this API key asked (its name)")
    purge.add_argument("--older-than", type=_age, metavar="AGE", help="captured longer ago than: 30d, 12h, 3600")
    csub.add_parser("sweep", help="apply every deployment's retention (age, rows, bytes) now")
    csub.add_parser("stats", help="items stored, and what the capture writer did since the daemon started")
    add_client_options((*rsub.choices.values(), *csub.choices.values()))


def _edited(args: argparse.Namespace, client: DaemonClient) -> list[dict[str, Any]]:
    if args.answer is not None:
        return with_answer(conversation(client.capture(args.id)), args.answer)
    try:
        return parse_conversation(read_text(args.file))
    except ValueError as exc:
        raise ApiError("Bad conversation", f"{'standard input' if args.file == '-' else args.file}: {exc}") from None


def _export(args: argparse.Namespace, client: DaemonClient) -> int:
    selection = {"deployment": args.deployment, "since": args.since}
    started = client.export_captures({"kind": args.kind, "dataset": args.dataset, "base_model": args.base_model,
                                      "selection": selection, "eval_fraction": args.eval_fraction,
                                      "seed": args.seed})
    if args.no_wait:
        print_json(started) if args.json else print_export(started["export"], started["job"])
        return 0
    if not args.json:
        print_export(started["export"], started["job"])
    job = follow(client, started["job"]["id"], quiet=args.json)
    if job["state"] != "succeeded":
        raise ApiError("Job failed", f"job {job['id']} {job['state']}: {job['error']}")
    record = client.dataset(args.dataset)
    print_json({**started, "job": job, "dataset": record}) if args.json else print_report(record)
    return 0


def _review(args: argparse.Namespace, client: DaemonClient) -> int:
    if args.action == "list":
        listing = client.captures(deployment=args.deployment, key=args.key_name, since=args.since, until=args.until,
                                  rated=args.rated, corrected=args.corrected or None,
                                  sampled=args.sampled or None, state=args.state, limit=args.limit,
                                  offset=args.offset)
        print_json(listing) if args.json else print_queue(listing)
        return 0
    if args.action == "export":
        return _export(args, client)
    if args.action == "show":
        detail = client.capture(args.id)
        print_json(detail) if args.json else print_detail(detail)
        return 0
    messages = _edited(args, client) if args.action == "edit" else None
    detail = client.review_capture(args.id, args.action, messages, args.note)
    print_json(detail) if args.json else print_decision(detail)
    return 0


def _captures(args: argparse.Namespace, client: DaemonClient) -> int:
    if args.action == "purge":
        if args.deployment is None and args.key_name is None and args.older_than is None:
            raise ApiError("Nothing chosen", "captures purge needs --deployment, --key-name or --older-than "
                                             "(--older-than 0 purges everything)")
        purged = client.purge_captures(deployment=args.deployment, key=args.key_name, older_than_s=args.older_than)
        print_json(purged) if args.json else print(f"deleted {purged['deleted']} captured items")
    elif args.action == "sweep":
        result = client.sweep_captures()
        print_json(result) if args.json else print_sweep(result)
    else:
        stats, total = client.capture_stats(), client.captures(limit=1)["total"]
        print_json({**stats, "stored": total}) if args.json else print_stats(stats, total)
    return 0


def run_review(args: argparse.Namespace, client: DaemonClient) -> int:
    """`review ...` and `captures ...`; ApiError for the caller to print."""
    return _review(args, client) if args.command == "review" else _captures(args, client)
