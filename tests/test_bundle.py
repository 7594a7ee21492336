"""Signed offline bundles: a bundle verifies in full or is refused naming the file, before anything is touched;
the signature checks with stock openssl too (a box without the appliance can verify it)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.bundle import bundle
from appliance.bundle.manifest import SIGNATURE, SUMS, BundleError
from appliance.bundle.signing import SigningKeyError, generate_keypair

CLI = [sys.executable, "-m", "appliance"]


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "bundle-signing.key", tmp_path / "keys" / "bundle-signing.pub"
    generate_keypair(private, public)
    return private, public


@pytest.fixture()
def signed(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    package = tmp_path / "src" / "slm-appliance_0.1.0-1_amd64.deb"
    package.parent.mkdir()
    package.write_bytes(b"!<arch>\n" + bytes(range(256)) * 64)
    gguf = tmp_path / "src" / "starter.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 4096)
    hf = tmp_path / "src" / "my-model"
    (hf / "sub").mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    (hf / "sub" / "weights.bin").write_bytes(b"\1" * 1000)
    out = tmp_path / "bundle"
    bundle.create(out, keys[0], [package], [gguf, hf], progress=lambda _: None)
    return out


def verify(root: Path, public: Path) -> bundle.BundleManifest:
    return bundle.verify(root, public, progress=lambda _: None)


def test_a_fresh_bundle_verifies_and_lists_what_it_holds(signed: Path, keys: tuple[Path, Path]) -> None:
    manifest = verify(signed, keys[1])
    assert manifest.packages == ["debs/slm-appliance_0.1.0-1_amd64.deb"]
    assert manifest.models == {"starter": ["models/starter/starter.gguf"],
                               "my-model": ["models/my-model/config.json", "models/my-model/sub/weights.bin"]}
    assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("sha256sum") is None, reason="no openssl")
def test_stock_tools_verify_the_same_bundle(signed: Path, keys: tuple[Path, Path]) -> None:
    subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(keys[1]), "-rawin", "-in", SUMS,
                    "-sigfile", SIGNATURE], cwd=signed, check=True, capture_output=True)
    subprocess.run(["sha256sum", "--quiet", "-c", SUMS], cwd=signed, check=True)


@pytest.mark.parametrize(("damage", "named"), [
    (lambda r: (r / "models/my-model/sub/weights.bin").write_bytes(b"\2" * 1000),
     "models/my-model/sub/weights.bin: checksum mismatch"),
    (lambda r: (r / "debs/extra.deb").write_bytes(b"x"), "debs/extra.deb: not listed"),
    (lambda r: (r / "models/starter/starter.gguf").unlink(), "models/starter/starter.gguf: listed in SHA256SUMS but"),
    (lambda r: (r / SUMS).write_text((r / SUMS).read_text().replace("  bundle.json", "  bundle.json ")),
     "signature does not match"),
    (lambda r: (r / SIGNATURE).unlink(), "SHA256SUMS.sig: missing"),
    (lambda r: (r / "models/link").symlink_to("/etc/passwd"), "models/link: links and special files"),
])
def test_a_tampered_bundle_is_refused_naming_the_file(signed: Path, keys: tuple[Path, Path], damage, named) -> None:
    damage(signed)
    with pytest.raises(BundleError, match=named):
        verify(signed, keys[1])


def test_another_key_is_refused(signed: Path, tmp_path: Path) -> None:
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    with pytest.raises(BundleError, match="signature does not match"):
        verify(signed, tmp_path / "other.pub")


def test_keygen_never_overwrites_a_key(keys: tuple[Path, Path]) -> None:
    before = keys[0].read_bytes()
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_keypair(*keys)
    assert keys[0].read_bytes() == before


def test_install_stages_models_only_after_full_verification(signed: Path, keys: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    imports = tmp_path / "state" / "imports"
    (signed / "models/my-model/config.json").write_text('{"evil": 1}')
    with pytest.raises(BundleError, match="config.json: checksum mismatch"):
        bundle.install(signed, keys[1], imports, progress=lambda _: None)
    assert not imports.exists()  # refused before touching anything, though the damaged file came late
    (signed / "models/my-model/config.json").write_text("{}")
    seen: list[str] = []
    bundle.install(signed, keys[1], imports, progress=seen.append, dry_run=True)
    assert any("would run:" in line and line.endswith("slm-appliance_0.1.0-1_amd64.deb") for line in seen)
    assert not imports.exists()


def test_cli_round_trip_with_json(tmp_path: Path) -> None:
    run = lambda *a: subprocess.run([*CLI, "--state-dir", str(tmp_path / "state"), "bundle", *a, "--json"],  # noqa: E731
                                    capture_output=True, text=True)
    assert run("keygen", "--out", str(tmp_path / "k")).returncode == 0
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    made = run("create", str(tmp_path / "b"), "--key", str(tmp_path / "k/bundle-signing.key"), "--model", str(model))
    assert made.returncode == 0, made.stderr
    installed = run("install", str(tmp_path / "b"), "--pubkey", str(tmp_path / "k/bundle-signing.pub"))
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["models"] == {"m": ["models/m/m.gguf"]}
    assert (tmp_path / "state/imports/m/m.gguf").read_bytes() == b"GGUF"
    (tmp_path / "b/models/m/m.gguf").write_bytes(b"GGUX")
    refused = run("verify", str(tmp_path / "b"), "--pubkey", str(tmp_path / "k/bundle-signing.pub"))
    assert refused.returncode == 1 and "models/m/m.gguf: checksum mismatch" in refused.stderr
