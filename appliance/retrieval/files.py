"""`/v1/files`: uploads kept under `state_dir/files/<file id>` (written whole or not at all: temp file, fsync,
rename), one row each in `retrieval_files`. The size limit and the type check come first: nothing is written for
a refused upload. The row is inserted after the bytes are durable, so a listed file always has its bytes; a crash
between the two leaves an orphan blob that `sweep_orphans` removes."""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

from appliance.errors import BadRequest, StorageFull, is_disk_full
from appliance.retrieval.errors import FileNotFound, FileTooLarge
from appliance.retrieval.ids import new_file_id
from appliance.retrieval.models import FileObject
from appliance.retrieval.sniff import media_type
from appliance.state.durable import write_atomic
from appliance.state.store import StateStore

PURPOSES = ("assistants", "user_data")
MAX_FILENAME = 255


class FileStore:
    def __init__(self, store: StateStore, root: Path, max_bytes: int) -> None:
        self.store = store
        self.root = root
        self.max_bytes = max_bytes

    def path(self, file_id: str) -> Path:
        return self.root / file_id

    def create(self, filename: str, data: bytes, purpose: str = "assistants") -> FileObject:
        """Check, store and list an upload.

        Raises:
            BadRequest: an unknown purpose or a bad file name. UnsupportedFileType / InvalidFile: see `sniff`.
            FileTooLarge: over `max_bytes` (413). StorageFull: the disk is full (507).
        """
        if purpose not in PURPOSES:
            raise BadRequest(f"purpose {purpose!r} is not taken here; use one of {', '.join(PURPOSES)}",
                             param="purpose")
        name = Path(filename.replace("\\", "/")).name
        if not name or len(name) > MAX_FILENAME or any(ord(c) < 32 for c in name):
            raise BadRequest("the file needs a name (at most 255 characters, no control characters)", param="file")
        if len(data) > self.max_bytes:
            raise FileTooLarge(f"{name}: {len(data)} bytes is over the limit of {self.max_bytes} bytes "
                               "(retrieval_max_file_bytes)", param="file")
        if not data:
            raise BadRequest(f"{name}: the file is empty", param="file")
        kind = media_type(name, data)
        file_id, now = new_file_id(), int(time.time())
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            write_atomic(self.path(file_id), data, mode=0o600)
        except OSError as exc:
            if is_disk_full(exc):
                raise StorageFull(f"no space left for {name} ({len(data)} bytes)") from exc
            raise
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO retrieval_files(id, filename, purpose, bytes, sha256, media_type, created_at) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?)",
                         (file_id, name, purpose, len(data), hashlib.sha256(data).hexdigest(), kind, now))
        return FileObject(id=file_id, bytes=len(data), created_at=now, filename=name, purpose=purpose)

    def get(self, file_id: str) -> FileObject:
        row = self.store.query_one("SELECT * FROM retrieval_files WHERE id = ?", (file_id,))
        if row is None:
            raise FileNotFound(f"no file {file_id!r}", param="file_id")
        return FileObject(id=row["id"], bytes=row["bytes"], created_at=row["created_at"], filename=row["filename"],
                          purpose=row["purpose"], expires_at=row["expires_at"])

    def media_type(self, file_id: str) -> str:
        row = self.store.query_one("SELECT media_type FROM retrieval_files WHERE id = ?", (file_id,))
        if row is None:
            raise FileNotFound(f"no file {file_id!r}", param="file_id")
        return str(row["media_type"])

    def content(self, file_id: str) -> bytes:
        self.get(file_id)
        try:
            return self.path(file_id).read_bytes()
        except FileNotFoundError as exc:
            raise FileNotFound(f"file {file_id!r} has no content on disk (removed by hand?)") from exc

    def list_files(self, purpose: str | None = None) -> list[FileObject]:
        """Newest first."""
        where = " WHERE purpose = ?" if purpose else ""
        rows = self.store.query(f"SELECT id FROM retrieval_files{where} ORDER BY created_at DESC, rowid DESC",
                                (purpose,) if purpose else ())
        return [self.get(r["id"]) for r in rows]

    def delete_row(self, file_id: str) -> None:
        """The row (after its vector stores let go of it), then the bytes."""
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM vector_store_files WHERE file_id = ?", (file_id,))
            conn.execute("DELETE FROM retrieval_files WHERE id = ?", (file_id,))
        with contextlib.suppress(FileNotFoundError):
            self.path(file_id).unlink()

    def sweep_orphans(self) -> int:
        """Remove blobs with no row (a crash between the write and the insert) and temp files; how many."""
        if not self.root.is_dir():
            return 0
        known = {r["id"] for r in self.store.query("SELECT id FROM retrieval_files")}
        removed = 0
        for path in self.root.iterdir():
            if path.name not in known and (path.name.startswith("file-") or path.name.endswith(".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed
