"""Tokenizer metadata for a GGUF written from an HF folder: byte-level BPE from tokenizer.json (vocab, token
types, merges, pre-tokenizer), special token ids and the chat template."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from appliance.export.layout import ExportError

# llama.cpp picks its pre-tokenizer regex by name; these are the tokenizer.json shapes we recognise.
# Digits split one by one before GPT-2's regex is what llama.cpp calls "smollm".
_LLAMA3_DIGITS = r"\p{N}{1,3}"
_QWEN2_DIGITS = r"|\p{N}|"


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special: dict[str, int] = field(default_factory=dict)
    add_bos: bool = False
    chat_template: str | None = None


def _pre_name(pre: dict[str, Any] | None) -> str:
    parts = (pre.get("pretokenizers") or []) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    splits = [p for p in parts if p.get("type") == "Split"]
    if splits and kinds[-1] == "ByteLevel":
        pattern = str((splits[0].get("pattern") or {}).get("Regex", ""))
        if _LLAMA3_DIGITS in pattern:
            return "llama-bpe"
        if _QWEN2_DIGITS in pattern:
            return "qwen2"
    raise ExportError(f"unrecognised pre-tokenizer {kinds} in tokenizer.json; llama.cpp would split text "
                      "differently from transformers")


def _adds_bos(post: dict[str, Any] | None) -> bool:
    single = (post or {}).get("single") or []
    return bool(single) and "SpecialToken" in single[0]


def read_vocab(folder: Path, vocab_size: int) -> Vocab:
    """The GGUF tokenizer fields of an HF folder with a byte-level BPE tokenizer.json.

    Raises:
        ExportError: no tokenizer.json, a SentencePiece/Unigram tokenizer, or an unknown pre-tokenizer.
    """
    from transformers import AutoTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{folder.name}: no tokenizer.json (SentencePiece-only tokenizers are not supported yet)")
    spec = json.loads(path.read_text())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ExportError(f"{folder.name}: tokenizer {model.get('type')} (byte_fallback="
                          f"{model.get('byte_fallback')}) is not byte-level BPE; not supported yet")
    by_id: dict[int, tuple[str, int]] = {i: (t, gguf.TokenType.NORMAL) for t, i in model["vocab"].items()}
    for added in spec.get("added_tokens") or []:
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[int(added["id"])] = (added["content"], kind)
    if max(by_id) >= vocab_size:
        raise ExportError(f"tokenizer has id {max(by_id)} but the model's vocab_size is {vocab_size}")
    # Embedding rows past the tokenizer's ids still need a token each; llama.cpp marks them unused.
    entries = [by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED)) for i in range(vocab_size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    special = {role: int(getattr(tokenizer, f"{role}_token_id")) for role in ("bos", "eos", "unk", "pad")
               if getattr(tokenizer, f"{role}_token_id", None) is not None}
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    return Vocab(tokens=[t for t, _ in entries], types=[int(k) for _, k in entries], merges=merges,
                 pre=_pre_name(spec.get("pre_tokenizer")), special=special,
                 add_bos=_adds_bos(spec.get("post_processor")), chat_template=template)


def add_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    setters = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
               "pad": writer.add_pad_token_id}
    for role, token_id in vocab.special.items():
        setters[role](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
