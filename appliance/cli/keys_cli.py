"""`slm-appliance keys ...`: API keys through the daemon's API (`/api/v1/keys`, `/api/v1/usage`).

Never the store directly: run as root against the packaged service (DynamicUser), opening `state.db` here left
root-owned WAL files the daemon could not write. Root's CLI finds the service's state directory and its
`admin.key` like every other command through the daemon.
"""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli.output import print_json
from appliance.cli.remote import add_client_options
from appliance.client import DaemonClient


def add_key_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage API keys (through the daemon)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key; the token is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["inference", "admin"], default="inference")
    create.add_argument("--daily-token-quota", type=int, metavar="TOKENS",
                        help="tokens (prompt + completion) per UTC day; over it the key gets 429")
    keys_sub.add_parser("list", help="list keys (never their tokens)")
    usage = keys_sub.add_parser("usage", help="requests and tokens per key and model (default: today, UTC)")
    usage.add_argument("--since", type=float, metavar="UNIX_SECONDS", help="from this time on")
    keys_sub.add_parser("revoke", help="revoke a key by name or id").add_argument("name")
    add_client_options(keys_sub.choices.values())


def _print_keys(items: list[dict[str, Any]]) -> None:
    for k in items:
        state = "revoked" if k["revoked_at"] else "active"
        print(f"{k['name']:<24} {k['id']:<10} {k['scope']:<10} {state}")


def _print_usage(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print(f"{r['key']:<24} {r['model']:<32} {r['requests']:>8} requests {r['total_tokens']:>10} tokens")


def run_keys(args: argparse.Namespace, client: DaemonClient) -> int:
    """`keys create|list|usage|revoke`; ApiError for the caller to print."""
    if args.keys_command == "create":
        created = client.create_key(args.name, args.scope, args.daily_token_quota)
        if args.json:
            print_json(created)
        else:
            print(f"created {args.scope} key {args.name!r} (id {created['key']['id']}); the token is shown once:")
            print(created["token"])
    elif args.keys_command == "list":
        items = client.keys()
        print_json(items) if args.json else _print_keys(items)
    elif args.keys_command == "usage":
        # The daemon's default is the CLI's: from the start of today (UTC).
        rows = client.usage(None if args.since is None else str(args.since))["rows"]
        print_json(rows) if args.json else _print_usage(rows)
    else:
        revoked = client.revoke_key(args.name)
        print_json(revoked) if args.json else print(f"revoked key {revoked['name']!r}")
    return 0
