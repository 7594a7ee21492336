"""Read what a model file is without loading it: GGUF metadata via gguf.GGUFReader, HF folders via config.json
and the safetensors headers. Anything corrupt, truncated or incomplete is an InvalidModel with the reason."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf
from pydantic import BaseModel, Field

from appliance.errors import ApplianceError

GGUF_MAGIC = b"GGUF"
WEIGHT_SUFFIXES = (".safetensors",)


class InvalidModel(ApplianceError):
    """The file or folder is not a usable model; the message says why."""


class ModelFacts(BaseModel):
    format: str
    architecture: str | None = None
    params: int | None = None
    context_length: int | None = None
    quantization: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def _file_type_name(value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return gguf.LlamaFileType(value).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"type-{value}"


def inspect_gguf(path: Path) -> ModelFacts:
    """Facts of a GGUF model or LoRA adapter file.

    Raises:
        InvalidModel: bad magic, unreadable header, or tensor data past the end of the file (truncated).
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise InvalidModel(f"{path.name}: not a GGUF file (bad magic)")
    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as exc:  # the reader raises ValueError, IndexError, struct.error... on corrupt headers
        raise InvalidModel(f"{path.name}: corrupt or truncated GGUF ({exc})") from exc
    if not reader.tensors:
        raise InvalidModel(f"{path.name}: GGUF file has no tensors")
    end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    if end > size:
        raise InvalidModel(f"{path.name}: truncated GGUF: tensor data ends at byte {end}, file has {size}")
    arch = _field(reader, "general.architecture")
    kind = _field(reader, "general.type") or "model"
    return ModelFacts(
        format="gguf",
        architecture=arch,
        params=int(sum(int(t.n_elements) for t in reader.tensors)),
        context_length=_field(reader, f"{arch}.context_length"),
        quantization=_file_type_name(_field(reader, "general.file_type")),
        metadata={
            "gguf_type": kind,
            "name": _field(reader, "general.name"),
            "layers": _field(reader, f"{arch}.block_count"),
            "hidden": _field(reader, f"{arch}.embedding_length"),
            "heads": _field(reader, f"{arch}.attention.head_count"),
            "kv_heads": _field(reader, f"{arch}.attention.head_count_kv"),
            "has_chat_template": reader.get_field("tokenizer.chat_template") is not None,
        },
    )


def _safetensors_params(path: Path) -> int:
    """Parameter count from a safetensors header (8-byte length + JSON), without reading the tensors."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise InvalidModel(f"{path.name}: truncated safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length > min(size - 8, 100 * 1024 * 1024):
            raise InvalidModel(f"{path.name}: corrupt safetensors header length")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise InvalidModel(f"{path.name}: corrupt safetensors header: {exc}") from exc
    total, data_end = 0, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        total += count
        data_end = max(data_end, int(info["data_offsets"][1]))
    if 8 + length + data_end > size:
        raise InvalidModel(f"{path.name}: truncated safetensors file")
    return total


def inspect_hf(folder: Path) -> ModelFacts:
    """Facts of a Hugging Face model folder (config.json + *.safetensors [+ tokenizer]).

    Raises:
        InvalidModel: missing or bad config.json, or no weights.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InvalidModel(f"{folder.name}: not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise InvalidModel(f"{folder.name}/config.json: invalid JSON: {exc}") from exc
    weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not weights:
        raise InvalidModel(f"{folder.name}: no weights (*.safetensors) in the folder")
    tokenizer = any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model"))
    architectures = config.get("architectures") or []
    return ModelFacts(
        format="hf",
        architecture=config.get("model_type"),
        params=sum(_safetensors_params(p) for p in weights),
        context_length=config.get("max_position_embeddings"),
        quantization=str(config.get("torch_dtype") or config.get("dtype") or "unknown"),
        metadata={
            "architectures": architectures,
            "layers": config.get("num_hidden_layers"),
            "hidden": config.get("hidden_size"),
            "heads": config.get("num_attention_heads"),
            "kv_heads": config.get("num_key_value_heads"),
            "has_tokenizer": tokenizer,
            "weight_files": [p.name for p in weights],
        },
    )


def inspect_peft(folder: Path) -> ModelFacts:
    """Facts of a PEFT adapter folder (adapter_config.json + adapter_model.safetensors).

    Raises:
        InvalidModel: bad adapter_config.json, not a LoRA adapter, or no weights.
    """
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except ValueError as exc:
        raise InvalidModel(f"{folder.name}/adapter_config.json: invalid JSON: {exc}") from exc
    if config.get("peft_type") != "LORA":
        raise InvalidModel(f"{folder.name}: adapter type {config.get('peft_type')!r}; only LoRA is supported")
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise InvalidModel(f"{folder.name}: no adapter_model.safetensors")
    return ModelFacts(
        format="peft",
        architecture="lora",
        params=_safetensors_params(weights),
        quantization="fp32",
        metadata={
            "lora_r": config.get("r"),
            "lora_alpha": config.get("lora_alpha"),
            "target_modules": sorted(config.get("target_modules") or []),
            "base_model_name_or_path": config.get("base_model_name_or_path"),
        },
    )


def inspect_path(path: Path) -> ModelFacts:
    """GGUF file, PEFT adapter folder or HF model folder, told apart by what they contain."""
    if not path.is_dir():
        return inspect_gguf(path)
    if (path / "adapter_config.json").is_file():
        return inspect_peft(path)
    return inspect_hf(path)
