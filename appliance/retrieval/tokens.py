"""Token counts for chunking, with the embeddings model's own tokenizer when its GGUF is at hand.

all-MiniLM-L6-v2 is a BERT model: lower-cased, accents stripped, split on spaces and punctuation (each CJK
character a word of its own), then WordPiece (greedy longest match from the model's vocabulary, which its GGUF
carries as `tokenizer.ggml.tokens`: word-initial pieces marked with U+2581, continuations bare). That is done
here in a few lines of Python, so no tokenizer library is needed in the daemon's environment. Without a
vocabulary (another model, or none loadable) the count is an estimate: one token per word or punctuation mark
plus one per further 6 characters of a long word (English text under WordPiece: about 1.2 to 1.3 per word).

Text is cut only between words: `words()` gives each word's span in the original text and its token count.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

START = "\u2581"
MAX_WORD_CHARS = 100  # BERT's rule: a longer word is one [UNK]
_WORD = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)


def _cjk(char: str) -> bool:
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def _normal(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


@dataclass(frozen=True)
class Word:
    start: int  # character offsets in the original text
    end: int
    tokens: int


class TokenCounter:
    """`count(text)` and `words(text)`; `exact` says whether the model's vocabulary is used."""

    def __init__(self, starts: frozenset[str] | None = None, continuations: frozenset[str] | None = None) -> None:
        self._starts = starts
        self._continuations = continuations or frozenset()
        self.exact = starts is not None
        self._pieces = lru_cache(maxsize=65536)(self._wordpiece if self.exact else self._estimate)

    @classmethod
    def from_gguf(cls, path: Path) -> TokenCounter:
        """The WordPiece vocabulary of a BERT-type GGUF; an estimating counter for any other model."""
        import gguf

        reader = gguf.GGUFReader(path)
        model = reader.fields.get("tokenizer.ggml.model")
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        if model is None or tokens is None or str(model.contents()) != "bert":
            return cls()
        vocab = [str(t) for t in tokens.contents()]
        starts = frozenset(t[1:] for t in vocab if t.startswith(START))
        return cls(starts, frozenset(t for t in vocab if not t.startswith(START)))

    def _estimate(self, word: str) -> int:
        return 1 + max(0, len(word) - 1) // 6

    def _wordpiece(self, word: str) -> int:
        text = _normal(word)
        if not text or len(text) > MAX_WORD_CHARS:
            return 1
        assert self._starts is not None
        count, at = 0, 0
        while at < len(text):
            vocab = self._starts if at == 0 else self._continuations
            end = len(text)
            while end > at and text[at:end] not in vocab:
                end -= 1
            if end == at:
                return 1  # no piece fits: the whole word is [UNK]
            count, at = count + 1, end
        return count

    def words(self, text: str) -> list[Word]:
        out: list[Word] = []
        for match in _WORD.finditer(text):
            word = match.group()
            if any(_cjk(c) for c in word):  # each CJK character is a word of its own
                out.extend(Word(match.start() + i, match.start() + i + 1, 1) for i in range(len(word)))
                continue
            out.append(Word(match.start(), match.end(), self._pieces(word)))
        return out

    def count(self, text: str) -> int:
        """Tokens of `text` (without the model's [CLS] and [SEP])."""
        return sum(w.tokens for w in self.words(text))

    def head(self, text: str, limit: int) -> str:
        """The longest start of `text`, cut between words, of at most `limit` tokens."""
        total, end = 0, 0
        for word in self.words(text):
            if total + word.tokens > limit:
                return text[:end] if end else text[:word.end]
            total, end = total + word.tokens, word.end
        return text


ESTIMATE = TokenCounter()
