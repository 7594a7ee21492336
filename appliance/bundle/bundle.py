"""Create, verify and install offline bundles.

A bundle is a folder: `debs/` (or `wheels/`), `models/<name>/…`, `bundle.json` (what is in it), and
`SHA256SUMS` + `SHA256SUMS.sig` over all of them. Verification checks the signature first, then every file,
and refuses a file that is missing, changed or not listed, naming it: nothing is installed from a bundle that
does not verify in full.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from appliance import __version__
from appliance.bundle.manifest import SIGNATURE, SUMS, BundleError, Entry, digest, files_on_disk, parse, render
from appliance.bundle.signing import load_private_key, load_public_key, sign, signature_matches

MANIFEST = "bundle.json"
Progress = Callable[[str], None]


class BundleManifest(BaseModel):
    appliance_version: str
    created: str
    packages: list[str]  # bundle paths of .deb files and wheels, in install order
    models: dict[str, list[str]]  # model name → its files' bundle paths


def create(out: Path, private_key: Path, packages: list[Path], models: list[Path],
           progress: Progress = print) -> BundleManifest:
    """Copy packages and models into `out` (new or empty), then write bundle.json, SHA256SUMS and the
    signature. A model is a GGUF file or an HF folder; its bundle name is the file or folder name."""
    key = load_private_key(private_key)  # fail before copying gigabytes
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty: a bundle is written into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest = BundleManifest(appliance_version=__version__, created=datetime.now(UTC).isoformat(),
                              packages=[], models={})
    for package in packages:
        kind = "debs" if package.suffix == ".deb" else "wheels"
        manifest.packages.append(_copy(package, out / kind / package.name, out, progress)[0])
    for model in models:
        name = model.stem if model.is_file() else model.name
        manifest.models[name] = _copy(model, out / "models" / name / (model.name if model.is_file() else ""),
                                      out, progress)
    (out / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    files = files_on_disk(out)
    progress(f"hashing {len(files)} files")
    sums = render([Entry(rel, digest(out / rel)) for rel in files])
    (out / SUMS).write_bytes(sums)
    (out / SIGNATURE).write_bytes(sign(key, sums))
    return manifest


def _copy(source: Path, target: Path, root: Path, progress: Progress) -> list[str]:
    if not source.exists():
        raise BundleError(f"{source}: no such file or folder")
    progress(f"adding {source}")
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
        return sorted(p.relative_to(root).as_posix() for p in target.rglob("*") if p.is_file())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return [target.relative_to(root).as_posix()]


def verify(root: Path, public_key: Path, progress: Progress = print) -> BundleManifest:
    """Check the signature, then every file; raise BundleError naming the first problem."""
    key = load_public_key(public_key)
    try:
        sums, signature = (root / SUMS).read_bytes(), (root / SIGNATURE).read_bytes()
    except OSError as exc:
        raise BundleError(f"{Path(exc.filename).name}: missing from the bundle ({exc.strerror})") from exc
    if not signature_matches(key, sums, signature):
        raise BundleError(f"{SUMS}: the signature does not match {public_key} (changed, or signed by another key)")
    entries = {e.path: e.sha256 for e in parse(sums)}
    for relative in files_on_disk(root):
        if relative not in entries:
            raise BundleError(f"{relative}: not listed in {SUMS} (added after signing)")
    for relative, expected in entries.items():
        path = root / relative
        if not path.is_file():
            raise BundleError(f"{relative}: listed in {SUMS} but missing")
        progress(f"checking {relative}")
        if digest(path) != expected:
            raise BundleError(f"{relative}: checksum mismatch (tampered with or damaged)")
    try:
        return BundleManifest.model_validate_json((root / MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{MANIFEST}: unreadable ({exc})") from exc


def install(root: Path, public_key: Path, imports_dir: Path, progress: Progress = print,
            dry_run: bool = False) -> BundleManifest:
    """Verify in full, then install the packages (apt for .deb, pip of this interpreter for wheels) and copy the
    models into `imports_dir/<name>`, where `slm-appliance models import` takes them from."""
    manifest = verify(root, public_key, progress)
    for package in manifest.packages:
        command = _install_command(root / package)
        progress(("would run: " if dry_run else "running: ") + " ".join(command))
        if not dry_run:
            subprocess.run(command, check=True)
    for name, files in manifest.models.items():
        target = imports_dir / name
        progress(("would copy " if dry_run else "copying ") + f"model {name} to {target}")
        if dry_run:
            continue
        for relative in files:
            destination = target / Path(relative).relative_to(Path("models") / name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, destination)
    return manifest


def _install_command(package: Path) -> list[str]:
    if package.suffix == ".deb":
        apt = shutil.which("apt-get")
        if apt:  # apt resolves the package's dependencies from what the box already has, offline
            return [apt, "install", "-y", "-o", "Dpkg::Options::=--force-confold", str(package)]
        return ["dpkg", "-i", str(package)]
    return [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", str(package)]

