"""`slm-appliance deploy policy show|set|versions`: a deployment's guardrails and capture policy, versioned by
the daemon (`/api/v1/deployments/{name}/policy`). The daemon checks a policy whole (a regex that could backtrack
catastrophically is refused naming its rule); a new version is in force for the next request."""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from appliance.cli.output import print_json
from appliance.cli.remote import add_client_options
from appliance.client import ApiError, DaemonClient
from appliance.client.policy import policy_lines, version_text

EXAMPLE = """A policy file is JSON or TOML with three optional parts, `guardrails`, `capture` and `watch`; what is
left out takes its default (no limits, no rules, no redaction, no guard, capture off, the profile's live watch).
Example (policy.toml):

  [guardrails.limits]
  max_answer_tokens = 512

  [[guardrails.deny]]
  name = "no-secrets"
  direction = "both"             # input, output or both
  keywords = ["password", "api key"]

  [guardrails.redact]            # EMAIL, PHONE, IBAN, CREDIT_CARD, IP or a custom entity's label
  input = ["EMAIL", "PHONE"]
  capture = ["EMAIL", "PHONE", "IBAN"]

  [[guardrails.custom_entities]]
  label = "EMPLOYEE_ID"
  regex = "EMP-[0-9]{6}"

  [capture]
  enabled = true
  sample_rate = 0.2
  retention_days = 30

  [watch]                        # the live watch of a canary or a switch, over the profile's defaults
  min_requests = 100
  max_p95_ratio = 1.3
  auto_rollback = true

What `deploy policy show NAME --json` prints is accepted too (its `policy` is used), so a policy round-trips:
show --json > p.json, edit, set --file p.json. Every field: the PUT .../policy schema in /openapi.json.
"""


def add_policy_commands(dsub: Any) -> None:
    policy = dsub.add_parser("policy", help="a deployment's guardrails and capture policy (versioned)",
                             description="A deployment's guardrails (limits, deny rules, PII redaction, a guard "
                             "model) and capture of its answers:\none document, versioned by the daemon, in force "
                             "for the next request.", epilog=EXAMPLE,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    psub = policy.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    psub.add_parser("show", help="the policy in force: version, limits, deny rules, redaction, guard, capture",
                    epilog="--json prints the whole document, rules included.").add_argument("name")
    put = psub.add_parser("set", help="set a new version of the policy from a JSON or TOML file",
                          epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    put.add_argument("name")
    put.add_argument("--file", required=True, metavar="PATH",
                     help="policy.json or policy.toml; - reads it from standard input (JSON or TOML)")
    put.add_argument("--reason", help="why (kept with the version and in the audit log)")
    versions = psub.add_parser("versions", help="every version of the policy, newest first")
    versions.add_argument("name")
    versions.add_argument("--limit", type=int, default=20)
    add_client_options(psub.choices.values())


def parse_policy(text: str, source: str) -> dict[str, Any]:
    """The policy document in `text` (JSON, else TOML); a PolicyVersion's `policy` when given a whole one.

    Raises:
        ApiError: neither JSON nor TOML, or not an object (the message names `source`).
    """
    try:
        document = json.loads(text)
    except ValueError as json_error:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as toml_error:
            reasons = {".json": f"not JSON: {json_error}", ".toml": f"not TOML: {toml_error}"}
            reason = reasons.get(Path(source).suffix, f"neither JSON ({json_error}) nor TOML ({toml_error})")
            raise ApiError("Bad policy file", f"{source}: {reason}") from None
    if not isinstance(document, dict):
        raise ApiError("Bad policy file", f"{source}: expected an object with guardrails and capture")
    inner = document.get("policy")
    return inner if isinstance(inner, dict) else document


def read_text(path: str) -> str:
    """The file's text, or standard input's for `-`. Raises ApiError when it cannot be read."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ApiError("Cannot read", f"cannot read {path}: {exc.strerror}") from None


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "—"


def print_policy(version: dict[str, Any]) -> None:
    print(f"{version['deployment']}: policy {version_text(version)}"
          + (f", set {_when(version['created_at'])}" if version.get("version") else ""))
    for label, text in policy_lines(version)[1:]:
        print(f"  {label:<9} {text}")


def _print_versions(versions: list[dict[str, Any]]) -> None:
    print(f"{'VER':>4}  {'SET':<19}  {'BY':<16} {'CAPTURE':<8} {'DENY':>4}  REASON")
    for v in versions:
        guardrails, capture = v["policy"]["guardrails"], v["policy"]["capture"]
        print(f"{v['version']:>4}  {_when(v['created_at']):<19}  {v['actor']:<16} "
              f"{'on' if capture['enabled'] else 'off':<8} {len(guardrails['deny']):>4}  {v['reason']}")


def run_policy(args: argparse.Namespace, client: DaemonClient) -> int:
    """`deploy policy show|set|versions`; ApiError for the caller to print."""
    if args.policy_action == "versions":
        versions = client.policy_versions(args.name, args.limit)
        print_json(versions) if args.json else _print_versions(versions)
        return 0
    if args.policy_action == "set":
        source = "standard input" if args.file == "-" else args.file
        version = client.set_policy(args.name, parse_policy(read_text(args.file), source), args.reason)
    else:
        version = client.policy(args.name)
    print_json(version) if args.json else print_policy(version)
    return 0
