"""`slm-appliance stores ...` as an operator runs it (a real subprocess, text and --json) against the shared
retrieval daemon: a store created from a local manual and followed until it is ingested, another manual added with
an attribute, list, show, search, the refusals (an unknown store, a file that cannot be read), delete; the same
calls through the async client the TUI uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.client import AsyncDaemonClient
from appliance.testing.daemon import DaemonProcess
from tests.retrieval.corpus import answers, documents, questions
from tests.test_cli_review import as_json, cli, ok

pytestmark = pytest.mark.slow
ACTIONS = {"create": ["n"], "add": ["vs_x", "f.md"], "list": [], "show": ["vs_x"], "search": ["vs_x", "q"],
           "delete": ["vs_x"]}


def test_every_command_has_help_and_json() -> None:
    from appliance.cli.main import _parser

    parser = _parser()
    for action, rest in ACTIONS.items():
        args = parser.parse_args(["stores", action, *rest, "--json"])
        assert args.json and args.action == action
    add = parser.parse_args(["stores", "add", "vs_x", "a.md", "b.pdf", "--attribute", "line=B", "--no-wait"])
    assert [p.name for p in add.files] == ["a.md", "b.pdf"] and add.no_wait
    with pytest.raises(SystemExit) as shown:
        parser.parse_args(["stores", "--help"])
    assert shown.value.code == 0


def test_create_add_list_show_search_delete(embeddings_daemon: DaemonProcess, tmp_path: Path) -> None:
    d = embeddings_daemon
    docs = documents()[:2]  # the md and the html manuals
    paths = []
    for doc in docs:
        paths.append(tmp_path / doc.filename)
        paths[-1].write_bytes(doc.data)
    created = ok(d, "stores", "create", "cli-manuals", str(paths[0]))
    assert f"uploaded {docs[0].filename}" in created and "completed: 1/1 files completed" in created, created
    store_id = created.split("created ", 1)[1].split()[0]
    batch = as_json(d, "stores", "add", store_id, str(paths[1]), "--attribute", "line=B", "--attribute", "year=2024")
    assert batch["status"] == "completed" and batch["file_counts"]["completed"] == 1, batch
    assert store_id in {s["id"] for s in as_json(d, "stores", "list")["data"]}
    assert f"{store_id}  cli-manuals  completed  2/2 files completed" in ok(d, "stores", "list")
    shown = as_json(d, "stores", "show", store_id)
    assert shown["status"] == "completed" and len(shown["files"]) == 2
    assert {"line": "B", "year": 2024} in [f["attributes"] for f in shown["files"]]  # a number, as OpenAI's
    question = next(q for q in questions(docs) if q.filename == docs[1].filename)
    page = as_json(d, "stores", "search", store_id, question.text, "--max-results", "3")
    assert page["data"] and any(answers(question, part["text"]) for hit in page["data"] for part in hit["content"])
    text = ok(d, "stores", "search", store_id, question.text, "--max-results", "1")
    assert text.startswith("#1 ") and docs[1].filename in text.splitlines()[0]
    unknown = cli(d, "stores", "add", "vs_nope", str(paths[0]))
    assert unknown.returncode == 1 and "404" in unknown.stderr and "vs_nope" in unknown.stderr
    missing = cli(d, "stores", "add", store_id, str(tmp_path / "nope.md"))
    assert missing.returncode == 1 and "nope.md" in missing.stderr
    assert ok(d, "stores", "delete", store_id).strip() == f"deleted {store_id}"
    assert cli(d, "stores", "show", store_id).returncode == 1


def test_async_client_calls(embeddings_daemon: DaemonProcess) -> None:
    async def calls() -> None:
        client = AsyncDaemonClient(embeddings_daemon.url, embeddings_daemon.admin_key())
        try:
            file = await client.upload_file("notes.txt", b"The K-17 lathe runs at 1200 rpm.")
            store = await client.create_store("async-notes", [file["id"]])
            assert store["file_counts"]["total"] == 1
            assert store["id"] in {s["id"] for s in (await client.stores())["data"]}
            await client.delete_store(store["id"])
            assert (await client.delete_file(file["id"]))["deleted"] is True
        finally:
            await client.aclose()

    asyncio.run(calls())
