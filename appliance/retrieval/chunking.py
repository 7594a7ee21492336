"""Static, token-aware chunking with overlap (OpenAI's `static` strategy; `auto` is 800 tokens with 400 of
overlap): windows of at most `max_chunk_size_tokens` tokens, each starting `max - overlap` tokens after the
previous one, cut between words (a window ends before the word that would pass the limit; the next one starts at
the first word of its last `overlap` tokens). Deterministic: the same text and settings give the same chunks, so
a resumed ingestion re-derives them and goes on from its cursor.

Each chunk also has `embed_text`: its first `window` tokens, what the embeddings model takes (all-MiniLM-L6-v2:
512 positions, [CLS] and [SEP] included). The whole chunk is indexed for keyword search and returned; the vector
covers its head. With the default 800/400 every token is in the head of some chunk (chunk k+1 starts 400 tokens
into chunk k), so no text is left out of the vectors whenever `max - overlap <= window`.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.retrieval.models import ChunkingStrategy
from appliance.retrieval.tokens import TokenCounter, Word

EMBED_WINDOW = 500  # tokens of a chunk's head that are embedded: MiniLM's 512 less [CLS], [SEP] and a margin


@dataclass(frozen=True)
class Chunk:
    seq: int
    text: str
    embed_text: str
    tokens: int
    start: int  # character offsets in the parsed text
    end: int


def _window(words: list[Word], first: int, limit: int) -> int:
    """The end (exclusive) of the window of words starting at `first` holding at most `limit` tokens (at least
    one word, so a word longer than the limit still moves the window on)."""
    total, at = 0, first
    while at < len(words) and (total + words[at].tokens <= limit or at == first):
        total += words[at].tokens
        at += 1
    return at


def _next_start(words: list[Word], first: int, end: int, overlap: int) -> int:
    """Where the next window starts: the first word of the last `overlap` tokens of [first, end), always after
    `first`."""
    total, at = 0, end
    while at > first + 1 and total + words[at - 1].tokens <= overlap:
        total += words[at - 1].tokens
        at -= 1
    return at if overlap else end


def chunk_text(text: str, strategy: ChunkingStrategy, counter: TokenCounter,
               window: int = EMBED_WINDOW) -> list[Chunk]:
    size = strategy.static.max_chunk_size_tokens
    overlap = strategy.static.chunk_overlap_tokens
    words = counter.words(text)
    chunks: list[Chunk] = []
    first = 0
    while first < len(words):
        end = _window(words, first, size)
        head = _window(words, first, min(window, size))
        start_char, end_char = words[first].start, words[end - 1].end
        chunks.append(Chunk(seq=len(chunks), text=text[start_char:end_char],
                            embed_text=text[start_char:words[head - 1].end],
                            tokens=sum(w.tokens for w in words[first:end]), start=start_char, end=end_char))
        if end >= len(words):
            break
        first = _next_start(words, first, end, overlap)
    return chunks
