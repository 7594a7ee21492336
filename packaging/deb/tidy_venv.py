"""Tidy the packaged virtual environment: drop torch's test programs (83 MiB of C++ test binaries nothing
runs), and give files the modes their contents call for (shared libraries and data 0644, ELF programs and
scripts with a #! line 0755), as Debian expects of a package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

KEEP_IN_TORCH_BIN = {"torch_shm_manager"}  # torch.multiprocessing starts it


def mode_for(path: Path) -> int:
    with path.open("rb") as fh:
        head = fh.read(20)
    if head.startswith(b"#!"):
        return 0o755 if path.stat().st_mode & 0o111 else 0o644
    if head.startswith(b"\x7fELF"):
        elf_type = int.from_bytes(head[16:18], "little")
        is_library = ".so" in path.name or elf_type == 1  # ET_REL objects are data too
        return 0o644 if is_library else 0o755
    return 0o644


def main(site: Path) -> None:
    shutil.rmtree(site / "torch" / "test", ignore_errors=True)
    for program in (site / "torch" / "bin").glob("*"):
        if program.name not in KEEP_IN_TORCH_BIN:
            shutil.rmtree(program) if program.is_dir() else program.unlink()
    for path in site.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode_for(path))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
