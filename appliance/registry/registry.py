"""The model registry: import a GGUF file or an HF folder from an allowed place into the state directory,
atomically (`appliance.state.staged`: a `.tmp-*` folder, fsynced, renamed to `<id>` inside the transaction that
inserts the row), recording checksums, facts and lineage. A crash leaves at worst a `.tmp-*` or an `<id>` folder
without a row: the startup sweep (appliance.state.sweep) removes both."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from appliance.errors import ApplianceError
from appliance.names import NAME
from appliance.registry.inspect import InvalidModel, ModelFacts, inspect_path
from appliance.state.staged import staged_import
from appliance.state.store import StateStore

CHUNK = 4 * 1024 * 1024


class RegistryError(ApplianceError):
    """An import or delete was refused; the message is for the operator."""


class NameConflict(RegistryError):
    status, code = 409, "name_conflict"


class ModelInUse(RegistryError):
    status, code = 409, "model_in_use"


class ModelNotFound(RegistryError):
    status, code = 404, "model_not_found"


class ModelRecord(BaseModel):
    id: str
    name: str
    kind: str
    format: str
    path: str
    sha256: str
    size_bytes: int
    architecture: str | None
    params: int | None
    context_length: int | None
    quantization: str | None
    parent_id: str | None
    source: str
    metadata: dict[str, Any]
    created_at: float

    @property
    def file(self) -> Path:
        """The file a backend loads: the GGUF itself, or the folder of an HF model."""
        return Path(self.path)


def _copy_hashing(src: Path, dst: Path, digest: Any) -> int:
    size = 0
    with src.open("rb") as fin, dst.open("xb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return size


def _insert(conn: sqlite3.Connection, record: ModelRecord) -> None:
    conn.execute(
        "INSERT INTO models(id, name, kind, format, path, sha256, size_bytes, architecture, params, "
        "context_length, quantization, parent_id, source, metadata, created_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record.id, record.name, record.kind, record.format, record.path, record.sha256, record.size_bytes,
         record.architecture, record.params, record.context_length, record.quantization, record.parent_id,
         record.source, json.dumps(record.metadata), record.created_at),
    )


def size_hint(path: Path) -> str:
    """The size of a file or folder, in MiB, for an operator's message."""
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
    return f"{sum(p.stat().st_size for p in files) / 2**20:.0f} MiB"


class Registry:
    def __init__(self, store: StateStore, models_dir: Path, import_roots: list[Path]) -> None:
        self.store = store
        self.models_dir = models_dir
        self.import_roots = [r.resolve() for r in import_roots]

    # -- checks -------------------------------------------------------------------------------------
    def _checked_source(self, source: Path, trusted: bool) -> Path:
        if not source.is_absolute():
            raise RegistryError(f"{source}: give an absolute path")
        if not os.path.lexists(source):
            raise RegistryError(f"{source}: no such file or folder")
        real = source.resolve()
        if not trusted and not any(real == root or root in real.parents for root in self.import_roots):
            roots = ", ".join(str(r) for r in self.import_roots) or "(none configured)"
            hint = " (a symlink pointing outside them)" if source.is_symlink() or real != source else ""
            raise RegistryError(f"{source}: outside the allowed import roots{hint}; allowed: {roots}")
        mode = os.stat(real).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise RegistryError(f"{source}: not a regular file or folder")
        if stat.S_ISDIR(mode):
            for entry in real.iterdir():
                entry_real = entry.resolve()
                if entry.is_symlink() and real not in entry_real.parents:
                    raise RegistryError(f"{entry}: symlink escapes the model folder")
                if entry.exists() and not (entry_real.is_file() or entry_real.is_dir()):
                    raise RegistryError(f"{entry}: not a regular file")
        return real

    def _check_name(self, name: str) -> None:
        if not NAME.match(name):
            raise RegistryError(
                f"invalid model name {name!r}: 1-64 lowercase letters, digits, '.', '_' or '-', starting alnum"
            )
        if self.store.query_one("SELECT 1 FROM models WHERE name = ?", (name,)):
            raise NameConflict(f"a model named {name!r} already exists")

    # -- import -------------------------------------------------------------------------------------
    def import_model(self, source: Path, name: str, *, trusted: bool = False, kind: str = "base",
                     parent_id: str | None = None, extra: dict[str, Any] | None = None) -> ModelRecord:
        """Copy `source` into the registry. The operator's file is only read, never moved or changed.

        Args:
            trusted: skip the import-root check (files the appliance itself produced or ships).
        Raises:
            RegistryError (NameConflict, ...): refused, with the reason.
        """
        self._check_name(name)
        real = self._checked_source(source, trusted)
        try:
            facts = inspect_path(real)
        except InvalidModel as exc:
            raise RegistryError(str(exc)) from exc
        except OSError as exc:
            raise RegistryError(f"{source}: cannot read: {exc.strerror}") from exc
        model_id = uuid.uuid4().hex[:12]
        target = self.models_dir / model_id
        with staged_import(target, source, RegistryError, needed=size_hint(real)) as staging:
            digest = hashlib.sha256()
            if real.is_dir():
                size = 0
                for entry in sorted(p for p in real.iterdir() if p.is_file()):
                    digest.update(entry.name.encode())
                    size += _copy_hashing(entry, staging.path / entry.name, digest)
                loaded = target
            else:
                size = _copy_hashing(real, staging.path / real.name, digest)
                loaded = target / real.name
            staging.seal()
            record = self._record(model_id, name, kind, facts, loaded, digest.hexdigest(), size, parent_id,
                                  str(source), extra or {})
            with self.store.transaction() as conn:
                if conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone():
                    raise NameConflict(f"a model named {name!r} already exists")
                _insert(conn, record)
                staging.install()
        return record

    @staticmethod
    def _record(model_id: str, name: str, kind: str, facts: ModelFacts, path: Path, sha: str, size: int,
                parent_id: str | None, source: str, extra: dict[str, Any]) -> ModelRecord:
        return ModelRecord(
            id=model_id, name=name, kind=kind, format=facts.format, path=str(path), sha256=sha, size_bytes=size,
            architecture=facts.architecture, params=facts.params, context_length=facts.context_length,
            quantization=facts.quantization, parent_id=parent_id, source=source,
            metadata={**facts.metadata, **extra}, created_at=time.time(),
        )

    # -- queries ------------------------------------------------------------------------------------
    @staticmethod
    def _from_row(row: Any) -> ModelRecord:
        return ModelRecord(**{**dict(row), "metadata": json.loads(row["metadata"])})

    def all(self) -> list[ModelRecord]:
        return [self._from_row(r) for r in self.store.query("SELECT * FROM models ORDER BY created_at")]

    def get(self, name_or_id: str) -> ModelRecord:
        row = self.store.query_one("SELECT * FROM models WHERE name = ? OR id = ?", (name_or_id, name_or_id))
        if row is None:
            raise ModelNotFound(f"no model named {name_or_id!r}")
        return self._from_row(row)

    def update_metadata(self, name_or_id: str, updates: dict[str, Any]) -> ModelRecord:
        """Merge `updates` into a model's metadata (evaluation results, export notes); files never change."""
        model = self.get(name_or_id)
        with self.store.transaction() as conn:
            conn.execute("UPDATE models SET metadata = ? WHERE id = ?",
                         (json.dumps({**model.metadata, **updates}), model.id))
        return self.get(model.id)

    def children(self, parent_id: str, kind: str | None = None) -> list[ModelRecord]:
        rows = self.store.query("SELECT * FROM models WHERE parent_id = ? AND (? IS NULL OR kind = ?) "
                                "ORDER BY created_at", (parent_id, kind, kind))
        return [self._from_row(r) for r in rows]

    def lineage(self, name_or_id: str) -> list[ModelRecord]:
        """The model, its parent, its parent's parent... up to the base."""
        chain = [self.get(name_or_id)]
        while chain[-1].parent_id and len(chain) < 32:
            chain.append(self.get(chain[-1].parent_id))
        return chain

    def inherited(self, name_or_id: str, key: str) -> Any:
        """The metadata value `key` of the model or its nearest ancestor that has one (e.g. the golden set an
        export's adapter was fine-tuned with); None when no model in the lineage has it."""
        for record in self.lineage(name_or_id):
            if record.metadata.get(key):
                return record.metadata[key]
        return None

    def delete(self, name_or_id: str) -> ModelRecord:
        model = self.get(name_or_id)
        with self.store.transaction() as conn:
            users = [r["name"] for r in conn.execute(
                "SELECT name FROM deployments WHERE model_id = ? UNION SELECT deployment FROM deployment_adapters"
                " WHERE model_id = ?", (model.id, model.id))]
            if users:
                raise ModelInUse(f"model {model.name!r} is used by deployment(s) {', '.join(users)}; remove them first")
            children = [r["name"] for r in conn.execute("SELECT name FROM models WHERE parent_id = ?", (model.id,))]
            if children:
                raise ModelInUse(f"model {model.name!r} is the parent of {', '.join(children)} (lineage)")
            conn.execute("DELETE FROM models WHERE id = ?", (model.id,))
        shutil.rmtree(self.models_dir / model.id, ignore_errors=True)
        return model
