"""`slm-appliance stores ...`: the appliance's vector stores (retrieval for the apps' `file_search`), through the
daemon's `/v1/files` and `/v1/vector_stores` routes: create one from local files, add files, list, show, search,
delete. Files are uploaded from where the command runs; the daemon parses, chunks and embeds them in a
`vector-store-ingest` job, which these commands follow until it is done unless `--no-wait`."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from appliance.cli.output import print_json
from appliance.cli.remote import add_client_options
from appliance.client import ApiError, DaemonClient

Json = dict[str, Any]
POLL_S = 1.0
WIDTH = 100
DESCRIPTION = """Vector stores: the documents the apps' file_search searches. Files are uploaded from where the
command runs; the daemon parses, chunks and embeds them in a vector-store-ingest job, which create and add follow
until it is done (--no-wait: return at once)."""
EPILOG = """examples:
  slm-appliance stores create manuals docs/line-a.md docs/line-b.pdf    a store from local files (waits)
  slm-appliance stores add vs_… docs/line-c.html --attribute line=C      more files, with attributes to filter on
  slm-appliance stores list
  slm-appliance stores show vs_…                 status, counts, each file's status and error
  slm-appliance stores search vs_… "clamp bolt torque of the K-17" --max-results 3
  slm-appliance stores delete vs_…

Apps use the store with the openai SDK: client.vector_stores.search(...), or client.responses.create(...,
tools=[{"type": "file_search", "vector_store_ids": ["vs_…"]}]). Types: txt, md, html, pdf, docx.
"""


def add_store_commands(sub: Any) -> None:
    stores = sub.add_parser("stores", help="vector stores: documents the apps' file_search searches (through the "
                            "daemon)", description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = stores.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ssub.add_parser("create", help="a new store, from local files if any are given")
    create.add_argument("name")
    create.add_argument("files", nargs="*", type=Path, metavar="FILE", help="files to upload and ingest")
    create.add_argument("--chunk-size", type=int, metavar="TOKENS", help="tokens per chunk, 100 to 4096 "
                        "(default 800)")
    create.add_argument("--chunk-overlap", type=int, metavar="TOKENS", help="tokens shared by neighbouring chunks, "
                        "at most half the size (default 400)")
    add = ssub.add_parser("add", help="upload local files into a store (one ingestion job)")
    add.add_argument("store", help="the store's id (vs_…)")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to upload and ingest")
    add.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                     help="an attribute of these files for search filters (repeatable; numbers and true/false "
                          "are taken as such)")
    for parser in (create, add):
        parser.add_argument("--no-wait", action="store_true", help="return once the files are queued")
    ssub.add_parser("list", help="the stores, newest first")
    ssub.add_parser("show", help="a store and its files (status, last error)").add_argument("store")
    search = ssub.add_parser("search", help="the store's best chunks for a query (hybrid: words and meaning)")
    search.add_argument("store")
    search.add_argument("query")
    search.add_argument("--max-results", type=int, default=5, help="1 to 50 (default 5)")
    search.add_argument("--score-threshold", type=float, help="leave out hits under this cosine (0 to 1)")
    ssub.add_parser("delete", help="a store and its chunks (its files stay uploaded)").add_argument("store")
    add_client_options(ssub.choices.values())


def _attribute(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ApiError("Bad attribute", f"--attribute {text!r}: write KEY=VALUE")
    if value in ("true", "false"):
        return key, value == "true"
    try:
        return key, int(value) if value.lstrip("-").isdigit() else float(value)
    except ValueError:
        return key, value


def _upload(client: DaemonClient, paths: list[Path], quiet: bool) -> list[str]:
    ids = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ApiError("Cannot read file", f"{path}: {exc.strerror or exc}") from exc
        file = client.upload_file(path.name, data)
        ids.append(file["id"])
        if not quiet:
            print(f"uploaded {path.name} ({file['bytes']} bytes) as {file['id']}")
    return ids


def _counts(obj: Json) -> str:
    c = obj["file_counts"]
    extra = ", ".join(f"{c[k]} {k}" for k in ("in_progress", "failed", "cancelled") if c.get(k))
    return f"{c['completed']}/{c['total']} files completed" + (f" ({extra})" if extra else "")


def _follow(read: Any, quiet: bool) -> Json:
    """Poll `read()` (a store or a batch) until it is no longer in progress, redrawing one status line."""
    obj: Json = read()
    while obj["status"] == "in_progress":
        if not quiet and sys.stderr.isatty():
            print(f"\ringesting: {_counts(obj)}", end="", file=sys.stderr, flush=True)
        time.sleep(POLL_S)
        obj = read()
    if not quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    return obj


def _chunking(args: argparse.Namespace) -> Json | None:
    if args.chunk_size is None and args.chunk_overlap is None:
        return None
    size = args.chunk_size or 800
    overlap = args.chunk_overlap if args.chunk_overlap is not None else min(400, size // 2)
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def _create(args: argparse.Namespace, client: DaemonClient) -> Json:
    ids = _upload(client, args.files, args.json)
    store = client.create_store(args.name, ids or None, chunking=_chunking(args))
    if not args.json:
        print(f"created {store['id']} ({store['name']}) with {len(ids)} file(s)")
    if ids and not args.no_wait:
        store = _follow(lambda: client.store(store["id"]), args.json)
    return dict(store)


def _add(args: argparse.Namespace, client: DaemonClient) -> Json:
    attributes = dict(_attribute(a) for a in args.attribute) or None
    client.store(args.store)  # an unknown store is refused before anything is uploaded
    ids = _upload(client, args.files, args.json)
    batch = client.add_file_batch(args.store, ids, attributes)
    if not args.json:
        print(f"batch {batch['id']}: {len(ids)} file(s) queued into {args.store}")
    if not args.no_wait:
        batch = _follow(lambda: client.file_batch(args.store, batch["id"]), args.json)
    return dict(batch)


def _print_store(store: Json) -> None:
    usage = store["usage_bytes"]
    print(f"{store['id']}  {store['name'] or '(no name)'}  {store['status']}  {_counts(store)}  {usage} bytes")


def _list(args: argparse.Namespace, client: DaemonClient) -> None:
    page = client.stores()
    if args.json:
        print_json(page)
        return
    if not page["data"]:
        print("no vector stores (slm-appliance stores create NAME FILE...)")
    for store in page["data"]:
        _print_store(store)


def _show(args: argparse.Namespace, client: DaemonClient) -> None:
    store, files = client.store(args.store), client.store_files(args.store)["data"]
    if args.json:
        print_json({**store, "files": files})
        return
    _print_store(store)
    for file in files:
        error = file.get("last_error")
        print(f"  {file['id']}  {file['status']}" + (f"  {error['code']}: {error['message']}" if error else ""))


def _search(args: argparse.Namespace, client: DaemonClient) -> None:
    page = client.search_store(args.store, args.query, args.max_results, score_threshold=args.score_threshold)
    if args.json:
        print_json(page)
        return
    if not page["data"]:
        print("no hits")
    for number, hit in enumerate(page["data"], 1):
        print(f"#{number} {hit['score']:.3f} {hit['filename']} ({hit['file_id']})")
        text = " ".join(" ".join(part["text"] for part in hit["content"]).split())
        print(textwrap.indent(textwrap.fill(textwrap.shorten(text, 400, placeholder=" …"), WIDTH - 4), "    "))


def run_stores(args: argparse.Namespace, client: DaemonClient) -> int:
    """`stores ...`; ApiError for the caller to print. A follow ending with failed files exits 1."""
    if args.action in ("create", "add"):
        done = _create(args, client) if args.action == "create" else _add(args, client)
        print_json(done) if args.json else print(f"{done['status']}: {_counts(done)}")
        return 1 if done["file_counts"].get("failed") else 0
    if args.action == "list":
        _list(args, client)
    elif args.action == "show":
        _show(args, client)
    elif args.action == "search":
        _search(args, client)
    else:
        deleted = client.delete_store(args.store)
        print_json(deleted) if args.json else print(f"deleted {deleted['id']}")
    return 0
