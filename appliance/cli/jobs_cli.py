"""`slm-appliance datasets ...` and `jobs ...`: through the daemon's API, with a live progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from appliance.cli.job_submit import add_submit_options, submit_kinds, submit_params
from appliance.cli.output import print_json
from appliance.cli.remote import add_client_options
from appliance.client import ApiError, DaemonClient
from appliance.client.progress import bar, fraction, progress_line
from appliance.jobs.kinds import KINDS

BAR_WIDTH = 30
LINE_WIDTH = 100  # a progress line redrawn in place with \r must not wrap


def add_job_commands(sub: Any) -> None:
    datasets = sub.add_parser("datasets", help="training datasets (through the daemon)")
    dsub = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = dsub.add_parser("import", help="validate and import a JSONL, CSV or Parquet file (runs as a job)")
    imp.add_argument("path")
    imp.add_argument("--name", required=True)
    imp.add_argument("--base-model", help="registry model whose chat template counts tokens")
    imp.add_argument("--max-seq-length", type=int, help="default: the hardware profile's")
    imp.add_argument("--eval-fraction", type=float, default=0.1)
    imp.add_argument("--seed", type=int, default=0)
    imp.add_argument("--strict", action="store_true", help="refuse the file on any defect")
    imp.add_argument("--semantic-dedup", action="store_true",
                     help="also drop records an embeddings deployment finds as close in meaning (SemDeDup)")
    imp.add_argument("--semantic-threshold", type=float, help="cosine at or above which a record goes (0.9)")
    imp.add_argument("--embeddings-deployment", help="the deployment that embeds (default: minilm-embeddings)")
    imp.add_argument("--no-wait", action="store_true", help="return the job without following it")
    dsub.add_parser("list", help="list dataset versions")
    show = dsub.add_parser("show", help="a dataset version with its validation report")
    show.add_argument("name")
    show.add_argument("--version", type=int)
    jobs = sub.add_parser("jobs", help="local jobs: queue, progress, logs, cancel (through the daemon)")
    jsub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    jsub.add_parser("list", help="recent jobs")
    kinds = ", ".join(kind.name for kind in submit_kinds())
    submit = jsub.add_parser("submit", help=f"submit a job ({kinds}), checked before it is queued")
    add_submit_options(submit)
    submit.add_argument("--no-wait", action="store_true", help="return the job without following it")
    for name, text in (("show", "one job"), ("watch", "follow a job's progress until it ends"),
                       ("cancel", "cancel a job (a running one checkpoints first)"), ("logs", "a job's log")):
        jsub.add_parser(name, help=text).add_argument("job_id")
    add_client_options((*dsub.choices.values(), *jsub.choices.values()))


def _bar(progress: dict[str, Any]) -> str:
    """An ASCII bar with the percentage when the worker reports steps, then the progress line."""
    share = fraction(progress)
    line = progress_line(progress)
    if share is None:
        return line
    return f"[{bar(share, BAR_WIDTH, '#', '-')}] {100 * share:5.1f}% {line}"


def follow(client: DaemonClient, job_id: str, quiet: bool = False) -> dict[str, Any]:
    """Print progress on stderr until the job ends; returns the final job."""
    tty = sys.stderr.isatty()
    for event in client.job_events(job_id):
        if quiet:
            continue
        if event["event"] == "progress":
            text = _bar(event)
            sys.stderr.write(f"\r{text[:LINE_WIDTH]:<{LINE_WIDTH}}" if tty else text + "\n")
            sys.stderr.flush()
        elif event["event"] == "log":
            sys.stderr.write(("\n" if tty else "") + f"  {event.get('message', '')}\n")
    if tty and not quiet:
        sys.stderr.write("\n")
    job: dict[str, Any] = client.job(job_id)
    return job


def _print_datasets(items: list[dict[str, Any]]) -> None:
    print(f"{'NAME':<24} {'VER':>3} {'TRAIN':>6} {'EVAL':>5} {'INVALID':>7} {'DUPES':>5}  ID")
    for d in items:
        print(f"{d['name']:<24} {d['version']:>3} {d['train_count']:>6} {d['eval_count']:>5} "
              f"{d['records_invalid']:>7} {d['duplicates_removed']:>5}  {d['id'][:12]}")


def print_report(record: dict[str, Any]) -> None:
    report = record["report"]
    print(f"{record['name']} v{record['version']}: {record['train_count']} train, {record['eval_count']} eval, "
          f"{record['records_invalid']} invalid, {record['duplicates_removed']} duplicates removed")
    lengths = report.get("token_lengths") or {}
    if lengths:
        print(f"tokens ({report['token_counter']}): p50 {lengths['p50']}, p90 {lengths['p90']}, "
              f"p99 {lengths['p99']}, max {lengths['max']}")
    for error in report.get("errors", [])[:20]:
        print(f"  {error['unit']} {error['line']}: {error['message']}")
    semantic = report.get("semantic_dedup")
    if semantic:
        print(f"semantic dedup ({semantic['embedder']}, cosine >= {semantic['threshold']}): "
              f"{report.get('semantic_duplicates', 0)} dropped of {semantic['records_compared']}")
        for d in [d for d in report.get("duplicates", []) if d["kind"] == "semantic"][:20]:
            print(f"  {d['unit']} {d['line']}: like {d['unit']} {d['duplicate_of']} (cosine {d['similarity']:.3f}, "
                  f"Jaccard {d['jaccard']:.2f})")


def _datasets(args: argparse.Namespace, client: DaemonClient) -> int:
    if args.action == "import":
        body = {"path": os.path.abspath(args.path), "name": args.name, "base_model": args.base_model,
                "max_seq_length": args.max_seq_length, "eval_fraction": args.eval_fraction, "seed": args.seed,
                "strict": args.strict, "semantic_dedup": args.semantic_dedup}
        for option in ("semantic_threshold", "embeddings_deployment"):
            if getattr(args, option) is not None:
                body[option] = getattr(args, option)
        job = client.import_dataset(body)
        if args.no_wait:
            print_json(job) if args.json else print(f"job {job['id']} queued")
            return 0
        job = follow(client, job["id"], quiet=args.json)
        if job["state"] != "succeeded":
            raise ApiError("Job failed", f"job {job['id']} {job['state']}: {job['error']}")
        record = client.dataset(args.name)
        print_json(record) if args.json else print_report(record)
        return 0
    if args.action == "list":
        items = client.datasets()
        print_json(items) if args.json else _print_datasets(items)
        return 0
    record = client.dataset(args.name, args.version)
    print_json(record) if args.json else print_report(record)
    return 0


def _print_result(job: dict[str, Any]) -> None:
    for key, value in job.get("result", {}).items():
        print(f"  {key}: {value}")


def _jobs(args: argparse.Namespace, client: DaemonClient) -> int:
    if args.action == "submit":
        job = client.submit_job(args.type, submit_params(args, KINDS.get(args.type)))
        if not args.no_wait:
            job = follow(client, job["id"], quiet=args.json)
        if args.json:
            print_json(job)
        else:
            print(f"job {job['id']} ({job['type']}): {job['state']}" + (f": {job['error']}" if job["error"] else ""))
            _print_result(job)
        return 1 if job["state"] in ("failed", "cancelled") else 0
    if args.action == "list":
        items = client.jobs()
        if args.json:
            print_json(items)
        for j in [] if args.json else items:
            print(f"{j['id']:<14} {j['type']:<16} {j['state']:<11} {_bar(j['progress'])[:60]}  {j['error'][:40]}")
        return 0
    if args.action == "logs":
        print(client.job_logs(args.job_id))
        return 0
    if args.action == "cancel":
        job = client.cancel_job(args.job_id)
    elif args.action == "watch":
        job = follow(client, args.job_id, quiet=args.json)
    else:
        job = client.job(args.job_id)
    if args.json:
        print_json(job)
    else:
        print(f"job {job['id']} ({job['type']}): {job['state']}" + (f": {job['error']}" if job["error"] else ""))
        if args.action == "show":
            _print_result(job)
    return 1 if job["state"] == "failed" else 0


def run_jobs(args: argparse.Namespace, client: DaemonClient) -> int:
    return _datasets(args, client) if args.command == "datasets" else _jobs(args, client)
