"""`SHA256SUMS`: the list of every file in a bundle with its digest, in `sha256sum -c` format."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from appliance.errors import ApplianceError

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
CHUNK = 1 << 20


class BundleError(ApplianceError):
    """A bundle is incomplete, tampered with or unsigned; the message names the file."""

    status, code = 400, "bad_bundle"


@dataclass(frozen=True)
class Entry:
    path: str  # relative, POSIX, inside the bundle
    sha256: str


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def render(entries: list[Entry]) -> bytes:
    return "".join(f"{e.sha256}  {e.path}\n" for e in sorted(entries, key=lambda e: e.path)).encode()


def parse(text: bytes) -> list[Entry]:
    """Entries of a SHA256SUMS file; a malformed line or a path that leaves the bundle is refused."""
    entries: list[Entry] = []
    for number, line in enumerate(text.decode("utf-8", errors="replace").splitlines(), 1):
        sha, sep, name = line.partition("  ")
        if not sep or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise BundleError(f"{SUMS} line {number}: expected '<sha256>  <path>'")
        entries.append(Entry(safe_relative(name, f"{SUMS} line {number}"), sha))
    return entries


def safe_relative(name: str, where: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name != path.as_posix():
        raise BundleError(f"{where}: path {name!r} is not a plain relative path inside the bundle")
    return name


def files_on_disk(root: Path) -> list[str]:
    """Every file under `root` but the sums and signature; a link or special file is refused (it could point
    anywhere)."""
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BundleError(f"{relative}: links and special files are not allowed in a bundle")
        if path.is_file() and relative not in (SUMS, SIGNATURE):
            found.append(relative)
    return found
