"""Our GGUF writer (on gguf.GGUFWriter): HF weights as F16 (or F32) for llama.cpp.

Two sources of metadata: a base GGUF the HF folder came from (every key/value kept — tokenizer, chat template,
rope settings — only the weights, name and file type change), or the HF folder itself (config + tokenizer.json).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np

from appliance.export.layout import ExportError, HFShape, NameMapper, interleave_rotary, read_hf_shape
from appliance.export.vocab import add_vocab, read_vocab

OutType = Literal["F16", "F32"]
FILE_TYPES = {"F16": gguf.LlamaFileType.MOSTLY_F16, "F32": gguf.LlamaFileType.ALL_F32}
# Keys the writer derives itself, or that describe the old file rather than the new one.
_DERIVED_KEYS = ("general.architecture", "general.file_type", "general.name")


def hf_tensors(folder: Path) -> dict[str, np.ndarray[Any, Any]]:
    """All tensors of an HF folder's safetensors files, as float32 numpy arrays."""
    import torch
    from safetensors import safe_open

    tensors: dict[str, np.ndarray[Any, Any]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[key] = fh.get_tensor(key).to(torch.float32).numpy()
    if not tensors:
        raise ExportError(f"{folder.name}: no safetensors weights")
    return tensors


def gguf_tensors(folder: Path, shape: HFShape, interleave_qk: bool = True) -> dict[str, np.ndarray[Any, Any]]:
    """The folder's weights under GGUF names, q/k rows in llama.cpp's order.

    `interleave_qk=False` writes HF's row order unchanged: wrong for llama, kept for the parity gate's tests.
    """
    mapper = NameMapper(shape)
    out: dict[str, np.ndarray[Any, Any]] = {}
    for hf_name, array in hf_tensors(folder).items():
        name = mapper.gguf_name(hf_name)
        if name is None:
            continue
        heads = mapper.rotary_heads(name)
        out[name] = interleave_rotary(array, heads) if heads and interleave_qk else array
    return out


def _stored(array: np.ndarray[Any, Any], out_type: OutType) -> np.ndarray[Any, Any]:
    # Norms and biases stay F32 as llama.cpp's own converter leaves them; matrices take the output type.
    return array.astype(np.float16 if out_type == "F16" and array.ndim >= 2 else np.float32)


def _write(out: Path, arch: str, add_keys: Callable[[gguf.GGUFWriter], None],
           tensors: list[tuple[str, np.ndarray[Any, Any]]], out_type: OutType) -> Path:
    staging = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(staging, arch)
    add_keys(writer)
    writer.add_file_type(FILE_TYPES[out_type])
    for name, array in tensors:
        writer.add_tensor(name, _stored(array, out_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    staging.rename(out)
    return out


def write_from_template(template: Path, folder: Path, out: Path, name: str, out_type: OutType = "F16",
                        interleave_qk: bool = True) -> Path:
    """`folder`'s weights with every key/value of `template` (the GGUF the folder was converted from).

    Raises:
        ExportError: the folder's tensors do not match the template's set (missing or extra weights).
    """
    reader = gguf.GGUFReader(template, "r")
    arch = reader.get_field("general.architecture")
    if arch is None:
        raise ExportError(f"{template.name}: no general.architecture")
    tensors = gguf_tensors(folder, read_hf_shape(folder), interleave_qk)
    wanted = [str(t.name) for t in reader.tensors]
    missing = [t for t in wanted if t not in tensors]
    extra = sorted(set(tensors) - set(wanted))
    if missing or extra:
        raise ExportError(f"weights do not match {template.name}: missing {missing[:5]}, unexpected {extra[:5]}")

    def add_keys(writer: gguf.GGUFWriter) -> None:
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key in _DERIVED_KEYS:
                continue
            sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type)
        writer.add_name(name)

    # The template's tensor order: llama.cpp does not need it, but it keeps diffs between files readable.
    return _write(out, str(arch.contents()), add_keys, [(t, tensors[t]) for t in wanted], out_type)


def write_from_hf(folder: Path, out: Path, name: str, out_type: OutType = "F16", interleave_qk: bool = True) -> Path:
    """A GGUF from an HF folder of a llama-family model (llama, mistral, qwen2) with a byte-level BPE tokenizer.

    Raises:
        ExportError: unsupported architecture, rope scaling or tokenizer.
    """
    shape = read_hf_shape(folder)
    vocab = read_vocab(folder, shape.vocab_size)
    tensors = gguf_tensors(folder, shape, interleave_qk)

    def add_keys(writer: gguf.GGUFWriter) -> None:
        writer.add_name(name)
        writer.add_context_length(shape.context_length)
        writer.add_embedding_length(shape.hidden)
        writer.add_block_count(shape.layers)
        writer.add_feed_forward_length(shape.ffn)
        writer.add_head_count(shape.heads)
        writer.add_head_count_kv(shape.kv_heads)
        writer.add_rope_freq_base(shape.rope_theta)
        writer.add_layer_norm_rms_eps(shape.rms_eps)
        writer.add_rope_dimension_count(shape.head_dim)
        if shape.head_dim * shape.heads != shape.hidden:  # llama.cpp otherwise derives it from the hidden size
            writer.add_key_length(shape.head_dim)
            writer.add_value_length(shape.head_dim)
        writer.add_vocab_size(shape.vocab_size)
        add_vocab(writer, vocab)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    return _write(out, shape.layout.arch_name, add_keys, sorted(tensors.items(), key=_tensor_order), out_type)


def _tensor_order(item: tuple[str, Any]) -> tuple[int, str]:
    # token_embd first, then blocks in numeric order, output tensors last: the order llama.cpp's files use.
    name = item[0]
    if name.startswith("blk."):
        return 1 + int(name.split(".")[1]), name
    return (0 if name.startswith("token_embd") else 1 << 20), name
