"""Exact and near-duplicate detection, deterministic, first occurrence kept.

Exact: sha256 of the normalized text (lowercased, whitespace collapsed, roles included).
Near: word shingles (5 words; 3 for short texts) hashed to 64 bits with blake2b; a MinHash signature
(128 seeded permutations) put through LSH (16 bands × 8 rows) finds candidate pairs, and the exact Jaccard
similarity of the two shingle sets decides, so the verdict never depends on estimation noise.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.datasets.shapes import Message

NUM_PERM = 128
BANDS = 16
ROWS = NUM_PERM // BANDS
SHORT_TEXT_WORDS = 50  # below this many words, 5-word shingles are too few to compare
_WS = re.compile(r"\s+")
U64 = npt.NDArray[np.uint64]


def normalized_text(messages: list[Message]) -> str:
    joined = " ".join(f"<{m['role']}> {m['content']}" for m in messages)
    return _WS.sub(" ", joined).strip().lower()


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def shingles(text: str) -> U64:
    """Sorted unique 64-bit hashes of the text's word shingles."""
    words = text.split()
    size = 3 if len(words) < SHORT_TEXT_WORDS else 5
    grams = {" ".join(words[i:i + size]) for i in range(max(1, len(words) - size + 1))}
    return np.unique(np.fromiter((_hash64(g) for g in grams), dtype=np.uint64, count=len(grams)))


def _mix(x: U64) -> U64:
    """splitmix64's finalizer: a cheap, well-spread bijection of 64-bit integers (wraps on purpose)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def jaccard(a: U64, b: U64) -> float:
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


@dataclass(frozen=True)
class Verdict:
    kind: str  # "exact" or "near"
    duplicate_of: int  # the key of the kept record
    jaccard: float


class Deduplicator:
    """Feed records in file order; each is either kept (None) or named a duplicate of an earlier kept one."""

    def __init__(self, threshold: float = 0.9, seed: int = 0) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("near-duplicate threshold must be in (0, 1]")
        self.threshold = threshold
        # Seeds from blake2b rather than a numpy RNG so the permutations never change across numpy versions.
        self._seeds = np.array([_hash64(f"minhash:{seed}:{i}") for i in range(NUM_PERM)], dtype=np.uint64)
        self._exact: dict[bytes, int] = {}
        self._buckets: dict[tuple[int, bytes], list[int]] = {}
        self._shingles: dict[int, U64] = {}

    def signature(self, grams: U64) -> U64:
        with np.errstate(over="ignore"):
            result: U64 = _mix(grams[None, :] ^ self._seeds[:, None]).min(axis=1)
        return result

    def jaccard_of(self, key: int, other: int) -> float:
        """The Jaccard similarity of two kept records' shingles (what the near-duplicate check compared)."""
        return jaccard(self._shingles[key], self._shingles[other])

    def check(self, key: int, messages: list[Message]) -> Verdict | None:
        text = normalized_text(messages)
        digest = hashlib.sha256(text.encode()).digest()
        if digest in self._exact:
            return Verdict("exact", self._exact[digest], 1.0)
        grams = shingles(text)
        signature = self.signature(grams)
        bands = [(b, signature[b * ROWS:(b + 1) * ROWS].tobytes()) for b in range(BANDS)]
        best: Verdict | None = None
        seen: set[int] = set()
        for band in bands:
            for other in self._buckets.get(band, ()):
                if other in seen:
                    continue
                seen.add(other)
                similarity = jaccard(grams, self._shingles[other])
                if similarity >= self.threshold and (best is None or other < best.duplicate_of):
                    best = Verdict("near", other, similarity)
        if best is not None:
            return best
        self._exact[digest] = key
        self._shingles[key] = grams
        for band in bands:
            self._buckets.setdefault(band, []).append(key)
        return None
