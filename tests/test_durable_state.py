"""State that survives faults, in units: the store's checks at open, the retry cap of interrupted jobs, the
startup sweep, the admin key file, the runtime directory, log rotation, durable writes, torch.load."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import stat
from pathlib import Path

import pytest

from appliance.jobs.store import MAX_INTERRUPTIONS, JobStore
from appliance.logfiles import rotate_if_large
from appliance.security.keys import KeyFileRefused, ensure_local_admin_key, verify_token
from appliance.security.private_dir import UnsafeDirectory, ensure_private_dir, runtime_dir_for
from appliance.state.durable import write_atomic
from appliance.state.store import StateStore, StoreError
from appliance.state.sweep import lock_state_dir, sweep
from tests.helpers import REPO


def _store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.db").open()


# -- the store at open ------------------------------------------------------------------------------------
def test_wal_with_synchronous_normal(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    assert store.query_one("PRAGMA synchronous")[0] == 1  # NORMAL


def test_damaged_database_is_refused_by_name_not_a_traceback(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for index in range(200):
        store.set_setting(f"k{index}", "x" * 500)
    store.close()  # the last connection checkpoints the WAL into the file
    data = bytearray((tmp_path / "state.db").read_bytes())
    data[8192:8256] = b"\xa5" * 64  # the header of a b-tree page
    (tmp_path / "state.db").write_bytes(bytes(data))
    with pytest.raises(StoreError) as caught:
        StateStore(tmp_path / "state.db").open()
    message = str(caught.value)
    assert str(tmp_path / "state.db") in message and "damaged (quick_check: " in message
    assert "restore a backup" in message and "\n" not in message


def test_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"not sqlite " * 500)
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "state.db")) + ".*file is not a database"):
        StateStore(tmp_path / "state.db").open()


def test_failed_commit_leaves_the_connection_usable(tmp_path: Path) -> None:
    store = _store(tmp_path)
    # A deferred foreign key violation fails at COMMIT, the way a full disk does: the transaction must end.
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as conn:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute("INSERT INTO deployments(name, model_id, backend, created_at, updated_at) "
                     "VALUES('d', 'no-such-model', 'llamacpp', 0, 0)")
    store.set_setting("after", "ok")  # no "cannot start a transaction within a transaction"
    assert store.get_setting("after") == "ok"


# -- the retry cap of jobs a crash interrupted ---------------------------------------------------------------
def _crash_while_running(jobs: JobStore, job_id: str) -> None:
    jobs.mark_running(job_id, pid=12345)  # the daemon then dies with it: the row stays 'running'


def test_crash_interrupted_job_is_resumed_then_failed_at_the_cap(tmp_path: Path) -> None:
    jobs = JobStore(_store(tmp_path))
    job = jobs.submit("finetune", {})
    for crash in range(1, MAX_INTERRUPTIONS):
        _crash_while_running(jobs, job.id)
        assert jobs.requeue_interrupted() == ([job.id], [])
        again = jobs.get(job.id)
        assert again.state == "queued" and again.interruptions == crash
        assert again.progress.message == f"interrupted ({crash} of 3 crashes allowed); resuming from the last " \
                                          "checkpoint"
    _crash_while_running(jobs, job.id)
    jobs.save_progress(job.id, jobs.get(job.id).progress.model_copy(update={"phase": "training"}))
    assert jobs.requeue_interrupted() == ([], [job.id])
    failed = jobs.get(job.id)
    assert failed.state == "failed" and failed.interruptions == MAX_INTERRUPTIONS and failed.finished_at
    assert failed.error == ("interrupted 3 times by a daemon crash or reboot (last in phase 'training'); not "
                            "resumed again: see its log, then submit it again")
    assert jobs.requeue_interrupted() == ([], [])  # final: never picked up again


def test_clean_shutdown_interruptions_do_not_count(tmp_path: Path) -> None:
    jobs = JobStore(_store(tmp_path))
    job = jobs.submit("export", {})
    for _ in range(MAX_INTERRUPTIONS + 2):
        jobs.mark_running(job.id, pid=1)
        jobs.mark_interrupted(job.id)  # SIGTERM to the daemon: the job is stopped and resumes next start
        assert jobs.requeue_interrupted() == ([job.id], [])
    assert jobs.get(job.id).interruptions == 0


# -- the startup sweep -------------------------------------------------------------------------------------
def _tree(state: Path, store: StateStore) -> dict[str, Path]:
    known_model, known_data = "a" * 12, "b" * 64
    with store.transaction() as conn:
        conn.execute("INSERT INTO models(id, name, format, path, sha256, size_bytes, created_at) "
                     "VALUES(?, 'kept', 'gguf', ?, '', 0, 0)", (known_model, str(state / "models" / known_model)))
        conn.execute("INSERT INTO datasets(id, name, version, source, source_sha256, format, records_read, "
                     "records_valid, records_invalid, duplicates_removed, train_count, eval_count, created_at) "
                     "VALUES(?, 'd', 1, '', '', 'jsonl', 1, 1, 0, 0, 1, 0, 0)", (known_data,))
    done, running = JobStore(store).submit("export", {}), JobStore(store).submit("export", {})
    JobStore(store).finish(done.id, "succeeded")
    paths = {
        "model": state / "models" / known_model / "m.gguf", "model_orphan": state / "models" / ("c" * 12) / "m.gguf",
        "model_staging": state / "models" / ".tmp-0123456789ab" / "m.gguf",
        "not_ours": state / "models" / "operator-notes" / "x.txt",
        "dataset": state / "datasets" / known_data / "train.jsonl",
        "dataset_orphan": state / "datasets" / ("d" * 64) / "train.jsonl",
        "dataset_staging": state / "datasets" / ".tmp-abc" / "train.jsonl",
        "dataset_trash": state / "datasets" / ".trash-abc" / "train.jsonl",
        "checkpoint": state / "jobs" / running.id / "checkpoint.pt",
        "checkpoint_tmp": state / "jobs" / running.id / "checkpoint.tmp",
        "merge_tmp": state / "jobs" / running.id / "export" / "merged.tmp" / "model.safetensors",
        "running_export": state / "jobs" / running.id / "export" / "x-f16.gguf",
        "done_export": state / "jobs" / done.id / "export" / "x-f16.gguf",
        "done_spec": state / "jobs" / done.id / "spec.json",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return paths


def test_sweep_removes_only_what_is_ours_and_unreferenced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = StateStore(state / "state.db").open()
    paths = _tree(state, store)
    runtime = ensure_private_dir(tmp_path / "run")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(runtime / "live.1.sock"))
    (runtime / "notes.txt").write_text("kept")

    removed = sweep(store, state, runtime)

    gone = {"model_orphan", "model_staging", "dataset_orphan", "dataset_staging", "dataset_trash",
            "checkpoint_tmp", "merge_tmp", "done_export"}
    assert {k for k, p in paths.items() if not p.exists()} == gone
    assert sorted(removed) == sorted([paths["model_orphan"].parent, paths["model_staging"].parent,
                                      paths["dataset_orphan"].parent, paths["dataset_staging"].parent,
                                      paths["dataset_trash"].parent, paths["checkpoint_tmp"],
                                      paths["merge_tmp"].parent, paths["done_export"].parent,
                                      runtime / "live.1.sock"])
    assert (runtime / "notes.txt").exists()
    assert sweep(store, state, runtime) == []  # nothing left the second time


def test_state_dir_lock_is_exclusive_and_released_with_the_fd(tmp_path: Path) -> None:
    first = lock_state_dir(tmp_path)
    assert first is not None and lock_state_dir(tmp_path) is None
    os.close(first)
    again = lock_state_dir(tmp_path)
    assert again is not None
    os.close(again)


# -- the admin key file ------------------------------------------------------------------------------------
def test_admin_key_file_is_0600_and_reused(tmp_path: Path) -> None:
    store, key_file = _store(tmp_path), tmp_path / "admin.key"
    ensure_local_admin_key(store, key_file)
    token = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and verify_token(store, token) is not None
    ensure_local_admin_key(store, key_file)
    assert key_file.read_text().strip() == token
    assert sorted(p.name for p in tmp_path.iterdir() if "admin" in p.name) == ["admin.key"]  # no temp left


def test_admin_key_file_refuses_a_symlink(tmp_path: Path) -> None:
    store, key_file = _store(tmp_path), tmp_path / "admin.key"
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone else's file\n")
    key_file.symlink_to(elsewhere)
    with pytest.raises(KeyFileRefused, match=r"admin\.key: a symlink; refusing"):
        ensure_local_admin_key(store, key_file)
    assert elsewhere.read_text() == "someone else's file\n" and key_file.is_symlink()
    dangling = tmp_path / "dangling.key"
    dangling.symlink_to(tmp_path / "nothing-here")
    with pytest.raises(KeyFileRefused):
        ensure_local_admin_key(store, dangling)
    assert not (tmp_path / "nothing-here").exists()


def test_write_atomic_replaces_whole_and_never_follows_a_temp_symlink(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"one", mode=0o600)
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


# -- the runtime directory ---------------------------------------------------------------------------------
def test_runtime_dir_prefers_systemd_then_xdg(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert runtime_dir_for(state, {"RUNTIME_DIRECTORY": "/run/slm:/run/other",
                                   "XDG_RUNTIME_DIR": "/run/user/0"}) == Path("/run/slm")
    xdg = runtime_dir_for(state, {"XDG_RUNTIME_DIR": str(tmp_path / "xdg")})
    assert xdg.parent == tmp_path / "xdg" and xdg.name.startswith("slm-appliance-")
    assert str(runtime_dir_for(state, {})).startswith("/tmp/slm-appliance-")


def test_runtime_dir_is_created_0700_and_refused_when_unsafe(tmp_path: Path) -> None:
    created = ensure_private_dir(tmp_path / "new")
    assert stat.S_IMODE(created.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeDirectory, match="writable by group or others"):
        ensure_private_dir(shared)
    (tmp_path / "link").symlink_to(created)
    with pytest.raises(UnsafeDirectory, match="a symlink"):
        ensure_private_dir(tmp_path / "link")
    if os.geteuid() == 0:  # only root can hand a folder to another user
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(UnsafeDirectory, match="owned by uid 65534"):
            ensure_private_dir(foreign)


# -- logs, torch.load --------------------------------------------------------------------------------------
def test_logs_rotate_by_size_keeping_two(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    with log.open("ab") as writer:  # a child's O_APPEND descriptor, kept open across rotations
        for generation in range(4):
            writer.write(f"gen{generation} ".encode() * 100)
            writer.flush()
            assert rotate_if_large(log, max_bytes=100, keep=2)
        writer.write(b"after")
        writer.flush()
    assert log.read_bytes() == b"after"  # written at the new end, not after a hole
    assert (tmp_path / "job.log.1").read_bytes().startswith(b"gen3")
    assert (tmp_path / "job.log.2").read_bytes().startswith(b"gen2")
    assert not (tmp_path / "job.log.3").exists()
    assert not rotate_if_large(log, max_bytes=100) and not rotate_if_large(tmp_path / "none.log")


def _torch_load_calls(source: str) -> list[str]:
    """Each `torch.load(...)` call in `source`, up to its closing parenthesis."""
    calls, start = [], source.find("torch.load(")
    while start != -1:
        depth, end = 0, start + len("torch.load")
        for end in range(start + len("torch.load"), len(source)):
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            if depth == 0:
                break
        calls.append(source[start:end + 1])
        start = source.find("torch.load(", end)
    return calls


def test_torch_load_is_weights_only_everywhere() -> None:
    """A checkpoint is data: no torch.load may unpickle code. Ours call none now (resuming is transformers'
    Trainer's), so the trainer's own loads are checked too, in the version installed."""
    import transformers.trainer

    ours = [c for tree in ("appliance", "tui", "bench") for p in (REPO / tree).rglob("*.py")
            for c in _torch_load_calls(p.read_text())]
    trainers = _torch_load_calls(Path(transformers.trainer.__file__).read_text())
    assert trainers, "the trainer that resumes a checkpoint is expected to call torch.load"
    assert all("weights_only=True" in c for c in ours + trainers), [c for c in ours + trainers
                                                                     if "weights_only=True" not in c]

