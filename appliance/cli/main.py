"""`slm-appliance`: the daemon and the operator's commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.config import ApplianceConfig, ConfigError, load_config
from appliance.logs import setup_logging

EPILOG = """examples:
  slm-appliance detect                 what this box has and which profile it gets
  slm-appliance profile --explain      every profile and the rule that made it match or not
  slm-appliance plan 7B                will a 7B model train and serve here?
  slm-appliance keys create --name app1 --scope inference
  slm-appliance models import /var/lib/slm-appliance/imports/model.gguf --name my-model
  slm-appliance deploy create my-model      serve it (waits until it answers)
  slm-appliance deploy list
  slm-appliance deploy switch my-model my-model-v2   blue/green behind the eval gate
  slm-appliance deploy rollback my-model            back to the previous version
  slm-appliance deploy shadow set my-model --candidate my-model-next   compare a candidate on live requests
  slm-appliance deploy canary start my-model --candidate my-model-next --weight 0.05   a share of the keys on it
  slm-appliance datasets import data.jsonl --name faq --base-model smollm2-135m-instruct
  slm-appliance jobs list
  slm-appliance deploy policy set my-model --file policy.toml   guardrails and capture, versioned
  slm-appliance review list --rated down   captured answers the apps rated down
  slm-appliance review export --kind sft --dataset faq   accepted answers into a new dataset version
  slm-appliance stores create manuals docs/*.pdf   a vector store for the apps' file_search
  slm-appliance tui                    the operator's control panel (terminal UI)
  slm-appliance bundle verify /media/usb/bundle   check a signed offline bundle before installing it
  slm-appliance daemon                 run the appliance (systemd runs this)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slm-appliance", description="Small-language-model appliance: detect, plan, serve, fine-tune.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"slm-appliance {__version__}")
    parser.add_argument("--config", type=Path, help="config TOML (default /etc/slm-appliance/config.toml)")
    parser.add_argument("--state-dir", type=Path, help="state directory (overrides the config)")
    parser.add_argument("--profiles-dir", type=Path, help="folder of profile TOML files")
    parser.add_argument("--profile", help="pin this hardware profile")
    # Replays a recorded NVML report instead of the real library: for demos and tests only.
    parser.add_argument("--nvml-replay", type=Path, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    daemon = sub.add_parser("daemon", help="run the appliance daemon (API, gateway, supervisors)")
    daemon.add_argument("--host", help="bind address (default 127.0.0.1)")
    daemon.add_argument("--port", type=int, help="API port (default 8470)")

    detect = sub.add_parser("detect", help="detect the hardware and show the chosen profile")
    detect.add_argument("--json", action="store_true", help="machine-readable output")

    profile = sub.add_parser("profile", help="show the selected hardware profile")
    profile.add_argument("--explain", action="store_true", help="every profile and why it matched or not")
    profile.add_argument("--json", action="store_true", help="machine-readable output")

    plan = sub.add_parser("plan", help="memory needed to train and serve a model of a given size here")
    plan.add_argument("params", help="model size, e.g. 135M, 1.5B, 7B")
    plan.add_argument("--json", action="store_true", help="machine-readable output")

    from appliance.cli.bundle_cli import add_bundle_commands
    from appliance.cli.jobs_cli import add_job_commands
    from appliance.cli.keys_cli import add_key_commands
    from appliance.cli.remote import add_key_options, add_remote_commands
    from appliance.cli.review_cli import add_review_commands
    from appliance.cli.stores_cli import add_store_commands

    add_key_commands(sub)
    tui = sub.add_parser("tui", help="the operator's control panel (terminal UI, through the daemon's API)")
    tui.add_argument("--url", help="daemon URL (default: from the config, http://127.0.0.1:8470)")
    add_key_options(tui)
    add_remote_commands(sub)
    add_job_commands(sub)
    add_review_commands(sub)
    add_store_commands(sub)
    add_bundle_commands(sub)
    return parser


def _config(args: argparse.Namespace) -> ApplianceConfig:
    return load_config(
        args.config, state_dir=args.state_dir, profiles_dir=args.profiles_dir, profile=args.profile,
        host=getattr(args, "host", None), port=getattr(args, "port", None),
    )


def _nvml(args: argparse.Namespace) -> Any:
    if args.nvml_replay is None:
        import pynvml

        return pynvml
    from appliance.hardware.recorded import RecordedNvml

    return RecordedNvml.from_file(args.nvml_replay)


def _fail(message: object, code: int) -> int:
    print(f"slm-appliance: {message}", file=sys.stderr)
    return code


def _through_daemon(args: argparse.Namespace, config: ApplianceConfig) -> int:
    """`tui`, `keys`, `models`, `deploy`, `datasets`, `jobs`, `review`, `captures`, `stores`: clients of the
    daemon's API, told only where it is (the state directory holds the admin key they call with)."""
    from appliance.cli.remote import connect, describe
    from appliance.client import ApiError, CredentialsError

    base_url, state_dir = config.base_url(), config.resolved_state_dir()
    if args.command == "tui":
        from tui.connect import run

        try:
            return run(args.url or base_url, state_dir, args.key, args.key_file)
        except CredentialsError as exc:
            return _fail(exc, 2)
    from appliance.cli.jobs_cli import run_jobs
    from appliance.cli.keys_cli import run_keys
    from appliance.cli.remote import run_remote
    from appliance.cli.review_cli import run_review
    from appliance.cli.stores_cli import run_stores

    command = {"keys": run_keys, "datasets": run_jobs, "jobs": run_jobs, "review": run_review,
               "captures": run_review, "stores": run_stores}.get(args.command, run_remote)
    try:
        with connect(args, base_url, state_dir) as client:
            return command(args, client)
    except ApiError as exc:
        return _fail(describe(exc), 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
    except ConfigError as exc:
        return _fail(exc, 2)
    if args.command == "daemon":
        from appliance.daemon.main import run_daemon

        setup_logging(config.log_level)
        return run_daemon(config, _nvml(args) if args.nvml_replay else None)
    if args.command == "bundle":
        from appliance.cli.bundle_cli import run_bundle

        return run_bundle(args, config)
    if args.command in ("tui", "keys", "models", "deploy", "datasets", "jobs", "review", "captures", "stores"):
        return _through_daemon(args, config)
    from appliance.cli import commands

    handler = {"detect": commands.detect, "profile": commands.profile, "plan": commands.plan}[args.command]
    try:
        return handler(args, config, _nvml(args))
    except commands.CommandError as exc:
        return _fail(exc, 2)
