"""Where an operator may import from: the model registry's rules, for a single file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from appliance.datasets.errors import DatasetError


def checked_source(source: Path, import_roots: list[Path]) -> Path:
    """The real path of `source` if it is an absolute path to a regular file inside an import root.

    Symlinks are resolved first, so one that points outside the roots is refused like `..` would be.
    """
    if not source.is_absolute():
        raise DatasetError(f"{source}: give an absolute path")
    if not os.path.lexists(source):
        raise DatasetError(f"{source}: no such file")
    real = source.resolve()
    if not any(real == root or root in real.parents for root in import_roots):
        roots = ", ".join(str(r) for r in import_roots) or "(none configured)"
        hint = " (a symlink pointing outside them)" if str(real) != os.path.normpath(source) else ""
        raise DatasetError(f"{source}: outside the allowed import roots{hint}; allowed: {roots}")
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise DatasetError(f"{source}: not a regular file")
    return real
