"""llama.cpp's CPU variants, checked on the CPU they will run on.

A build with `GGML_BACKEND_DL` and `GGML_CPU_ALL_VARIANTS` (scripts/build-llama-server.sh with
SLM_LLAMA_CPU_VARIANTS=1) puts one `libggml-cpu-<variant>.so` per x86 level beside the tools (x64, sse42,
haswell, skylakex, icelake, zen4, sapphirerapids, ...) and loads the best one for the CPU at start. ggml scores
the variants on CPUID alone (its source says "this does not check for OS support"): on this box, a VM whose
CPUID reports amx_tile and amx_int8 and whose kernel grants the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`
returns 0), the sapphirerapids variant is chosen and dies with SIGILL at its first `tileloadd` in prompt
processing. So before serving, the daemon asks which variant ggml would load, runs a short prompt through it
(`llama-bench`), and refuses the variant if that dies; then the next best, until one runs. The tools are
launched from a view (a folder of hard links, copies across file systems) holding the chosen variant alone.
The choice is kept in the view with what it depends on (the variant files, the CPU flags, the kernel) and made
again when one of them changes. `llama_cpu_variant` (SLM_LLAMA_CPU_VARIANT) forces one, for a test or an
operator; it is still run once, and refused if it dies.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

PREFIX, SUFFIX = "libggml-cpu-", ".so"
LOADED = re.compile(r"loaded CPU backend from .*?libggml-cpu-([A-Za-z0-9_.]+)\.so")
PROBE_TIMEOUT_S = 120
STATIC_BUILD = "static build (one CPU level compiled in)"


class NoVariantRuns(RuntimeError):
    pass


@dataclass(frozen=True)
class VariantChoice:
    bin_dir: str  # where to launch the tools from: the view, or the build's own folder for a static build
    variant: str | None  # None: a static build (one CPU level compiled in)
    refused: dict[str, str]  # variant → why it cannot run here
    forced: bool = False

    def describe(self) -> str:
        if self.variant is None:
            return STATIC_BUILD
        refused = "; ".join(f"{v} refused: {why}" for v, why in self.refused.items())
        return f"{self.variant}{' (forced)' if self.forced else ''}" + (f"; {refused}" if refused else "")


def _variant_of(file_name: str) -> str | None:
    """`zen4` for `libggml-cpu-zen4.so`; None for any other file."""
    if file_name.startswith(PREFIX) and file_name.endswith(SUFFIX):
        return file_name[len(PREFIX):-len(SUFFIX)]
    return None


def variants_in(bin_dir: Path) -> list[str]:
    return sorted(v for p in bin_dir.glob(f"{PREFIX}*{SUFFIX}") if (v := _variant_of(p.name)) is not None)


def choose(bin_dir: Path, view_root: Path, probe_model: Path, forced: str | None = None) -> VariantChoice:
    """The variant the tools in `bin_dir` run with on this CPU, and the folder to launch them from."""
    available = variants_in(bin_dir)
    if not available:
        return VariantChoice(str(bin_dir), None, {})
    key = _key(bin_dir, available, forced)
    kept = view_root / "choice.json"
    try:
        saved = json.loads(kept.read_text())
        if saved.get("key") == key and Path(saved["choice"]["bin_dir"], "llama-server").exists():
            return VariantChoice(**saved["choice"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    choice = _probe_all(bin_dir, view_root, probe_model, available, forced)
    view_root.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps({"key": key, "choice": asdict(choice)}))
    return choice


def _probe_all(bin_dir: Path, view_root: Path, model: Path, available: list[str],
               forced: str | None) -> VariantChoice:
    if forced is not None and forced not in available:
        raise NoVariantRuns(f"CPU variant {forced!r} is not in {bin_dir} (there: {', '.join(available)})")
    remaining = [forced] if forced is not None else list(available)
    refused: dict[str, str] = {}
    while remaining:
        trial = _view(bin_dir, view_root / "trial", remaining)
        best = loaded_variant(trial)
        if best is None or best not in remaining:
            raise NoVariantRuns(f"llama.cpp loaded no CPU variant from {trial} (left: {', '.join(remaining)})")
        failure = _run_prompt(trial, model)
        if failure is None:
            view = _view(bin_dir, view_root / best, [best])
            shutil.rmtree(trial, ignore_errors=True)
            return VariantChoice(str(view), best, refused, forced is not None)
        refused[best] = failure
        remaining.remove(best)
    raise NoVariantRuns(f"no llama.cpp CPU variant runs on this CPU: {refused}")


def loaded_variant(bin_dir: Path) -> str | None:
    """The variant ggml loads from `bin_dir` on this CPU (its own CPUID scoring)."""
    out = subprocess.run([str(bin_dir / "llama-bench"), "--list-devices"], capture_output=True, text=True,
                         timeout=PROBE_TIMEOUT_S, check=False)
    found = LOADED.search(out.stdout + out.stderr)
    return found.group(1) if found else None


def _run_prompt(bin_dir: Path, model: Path) -> str | None:
    """None when a 64-token prompt and 4 tokens decode; else why not (the signal that killed it)."""
    out = subprocess.run([str(bin_dir / "llama-bench"), "-m", str(model), "-p", "64", "-n", "4", "-r", "1",
                          "-t", "2", "-o", "json"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                         check=False)
    if out.returncode == 0:
        return None
    if out.returncode < 0:
        return f"killed by signal {-out.returncode} running a prompt"
    return f"exit {out.returncode} running a prompt: {out.stderr.strip()[-200:]}"


def _view(bin_dir: Path, view: Path, keep: list[str]) -> Path:
    """A folder with the tools and libraries of `bin_dir` and only the variants in `keep`."""
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for item in bin_dir.iterdir():
        variant = _variant_of(item.name)
        if variant is not None and variant not in keep:
            continue
        target = view / item.name
        if item.is_symlink():
            target.symlink_to(os.readlink(item))
            continue
        try:
            os.link(item, target)
        except OSError:  # another file system: a copy (the tools find their libraries beside them: $ORIGIN)
            shutil.copy2(item, target)
    return view


def _key(bin_dir: Path, available: list[str], forced: str | None) -> str:
    stamp = [(v, (bin_dir / f"{PREFIX}{v}{SUFFIX}").stat().st_mtime_ns) for v in available]
    flags = next((line for line in _cpuinfo().splitlines() if line.startswith("flags")), "")
    text = json.dumps([str(bin_dir.resolve()), stamp, flags, platform.release(), forced])
    return hashlib.sha256(text.encode()).hexdigest()


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
