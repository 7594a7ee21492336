"""An import that lands whole or not at all: a folder staged under a temp name, filled and fsynced, renamed into
place inside the transaction that inserts its row. The registry (models) and the dataset store (versions)
both import this way.

A crash leaves at worst a `.tmp-*` folder, or the new folder without its row; the startup sweep
(`appliance.state.sweep`) removes both. A full disk is a `StorageFull` (507) that says where space ran out;
any other file or store failure is the caller's own refusal, naming the source.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.errors import ApplianceError, StorageFull, is_disk_full
from appliance.state.durable import durable_rename, fsync_dir


class Staging:
    """The folder being filled (`path`) and where it goes (`target`)."""

    def __init__(self, path: Path, target: Path) -> None:
        self.path = path
        self.target = target
        self.installed = False

    def seal(self) -> None:
        """Make the staged folder's entries durable; its files must each have been fsynced as written."""
        fsync_dir(self.path)

    def install(self) -> None:
        """Rename the staged folder to `target`, durably. Call it inside the transaction that inserts the row:
        if the rename fails the row is rolled back with it, and if the COMMIT fails the folder is removed."""
        durable_rename(self.path, self.target)
        self.installed = True


@contextmanager
def staged_import(target: Path, source: object, refused: type[ApplianceError], *, needed: str = "",
                  full: type[StorageFull] = StorageFull) -> Iterator[Staging]:
    """A fresh `.tmp-*` folder beside `target` to fill, seal and install; removed on the way out if still there.

    Args:
        source: what is imported, named first in an error's message.
        refused: the error for a failure other than a full disk.
        needed: how much space the import takes, for the full-disk message ("94 MiB").
        full: the 507 error raised for a full disk (`StorageFull` or a subclass of it).
    Raises:
        StorageFull (`full`): the disk or quota ran out; nothing of the import is left.
        `refused`: another file or store failure; nothing of the import is left.
    """
    folder = target.parent
    staging = Staging(folder / f".tmp-{uuid.uuid4().hex[:12]}", target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging.path.mkdir()
        yield staging
    except (OSError, sqlite3.Error) as exc:
        if staging.installed:  # the COMMIT failed after the rename: the folder goes with the row
            shutil.rmtree(target, ignore_errors=True)
        if is_disk_full(exc):
            hint = f" ({needed} needed)" if needed else ""
            raise full(f"{source}: not imported, no space left in {folder}{hint}; free space and import "
                       "again") from exc
        raise refused(f"{source}: not imported: {getattr(exc, 'strerror', None) or exc}") from exc
    finally:
        if staging.path.exists():
            shutil.rmtree(staging.path, ignore_errors=True)
