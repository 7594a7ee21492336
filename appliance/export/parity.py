"""The parity gate: golden prompts, greedy, through transformers (PEFT and merged) and llama.cpp (the exports).

F16 exports must reproduce the merged model token for token, and the GGUF LoRA over the F16 base the PEFT model.
One exception, reported but not failed: a near-tie. Where the reference's two best tokens are within
NEAR_TIE_NATS of each other and the export sees the same two within that margin, fp16 rounding of the weights
may pick the other one: a tie broken differently, not a wrong weight (a full epoch on the starter gave one
such flip in 8 prompts). Teacher forcing goes on past it, so every later position is still held to the reference.

Quantized files cannot match, so they are fed the merged model's greedy continuation (teacher forcing) and judged by
how often their top-1 token agrees and by the mean gap between the two models' log-probabilities of it.
Both models see the same token ids: the gate compares weights, not tokenizers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.evaluation.golden import GoldenItem
from appliance.export.parity_report import NEAR_TIE_NATS, AgreementCheck, Divergence, ExactCheck, NearTie
from appliance.training.encode import pad_id

# (minimum top-1 agreement, maximum mean |logprob gap|) per file type, from runs on the starter model with a
# random LoRA (see tests/test_parity.py for the figures): a margin below what a sound export reaches, far above
# what a broken layout reaches (top-1 near 0).
THRESHOLDS: dict[str, tuple[float, float]] = {
    "F16": (0.99, 0.02), "Q8_0": (0.90, 0.10), "Q6_K": (0.85, 0.20), "Q5_K_M": (0.80, 0.30),
    "Q4_K_M": (0.70, 0.50), "Q4_0": (0.60, 0.70), "Q4_1": (0.60, 0.70),
    # HF folders for vLLM (export/hf_quant.py): a bf16 cast, and AWQ 4-bit (set at Q4_K_M's level, the GGUF
    # format of the same bits; not yet measured on a GPU).
    "bf16": (0.95, 0.05), "awq": (0.70, 0.50),
}
CONTEXT_TOKENS = 8


def gate_threads() -> int:
    """Threads for the gate's models: all cores but one. The box keeps serving meanwhile, and spin-waiting
    OpenMP/ggml threads that find their core taken slow down several-fold (4x measured on 2 busy cores)."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class Run:
    """One prompt's greedy continuation and the model's log-probability of each of its tokens."""

    prompt: str
    prompt_ids: list[int]
    tokens: list[int]
    logprobs: list[float]
    margins: list[float] = field(default_factory=list)  # top-1 minus top-2 log-probability at each position


def _divergence(tokenizer: Any, run: Run, got: list[int], position: int) -> Divergence:
    def around(tokens: list[int]) -> str:
        before = tokenizer.decode(run.tokens[max(0, position - CONTEXT_TOKENS):position])
        return f"{before}[{tokenizer.decode(tokens[position:position + CONTEXT_TOKENS])}]"

    return Divergence(prompt=run.prompt, position=position, expected_text=around(run.tokens), got_text=around(got))


def _chat_ids(tokenizer: Any, item: GoldenItem) -> list[int]:
    text = tokenizer.apply_chat_template(item.messages(), tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def transformers_runs(model: Any, tokenizer: Any, items: list[GoldenItem], max_new_tokens: int) -> list[Run]:
    """Greedy continuations, one prompt at a time (no padding: nothing but the weights differs between runs)."""
    import torch

    model.eval()
    pad = pad_id(tokenizer)
    runs = []
    with torch.no_grad():
        for item in items:
            ids = _chat_ids(tokenizer, item)
            prompt = torch.tensor([ids])
            out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad)
            tokens = out[0, len(ids):].tolist()
            logits = model(input_ids=out).logits[0, len(ids) - 1:-1]
            all_logprobs = torch.log_softmax(logits.float(), dim=-1)
            logprobs = all_logprobs.gather(1, out[0, len(ids):, None])[:, 0]
            best = all_logprobs.topk(2, dim=-1).values
            runs.append(Run(item.prompt, ids, tokens, logprobs.tolist(), (best[:, 0] - best[:, 1]).tolist()))
    return runs


@dataclass
class Forced:
    """A model fed a reference continuation: per position its top-1 token and log-probability, and its
    log-probability of the reference token."""

    top1: list[int]
    top1_logprobs: list[float]
    logprobs: list[float]


class LlamaCpp:
    """A GGUF (optionally with a GGUF LoRA) in llama.cpp, driven token by token with plain argmax."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def _logprobs(self, position: int) -> np.ndarray[Any, Any]:
        logits = np.asarray(self.llm.scores[position], dtype=np.float64)
        shifted = logits - logits.max()
        return np.asarray(shifted - np.log(np.exp(shifted).sum()))

    def greedy(self, prompt_ids: list[int], steps: int) -> list[int]:
        self.llm.reset()
        self.llm.eval(prompt_ids)
        tokens: list[int] = []
        for _ in range(steps):
            tokens.append(int(np.argmax(self.llm.scores[self.llm.n_tokens - 1])))
            self.llm.eval([tokens[-1]])
        return tokens

    def forced(self, prompt_ids: list[int], tokens: list[int]) -> Forced:
        """At each position, given the reference prefix: the top-1 token, its log-probability and that of
        `tokens[i]`."""
        self.llm.reset()
        self.llm.eval(prompt_ids + tokens[:-1])
        forced = Forced([], [], [])
        for i, token in enumerate(tokens):
            row = self._logprobs(len(prompt_ids) - 1 + i)
            best = int(np.argmax(row))
            forced.top1.append(best)
            forced.top1_logprobs.append(float(row[best]))
            forced.logprobs.append(float(row[token]))
        return forced


@contextmanager
def llama_cpp_model(path: Path, runs: list[Run], lora: Path | None = None) -> Iterator[LlamaCpp]:
    from llama_cpp import Llama

    n_ctx = max(len(r.prompt_ids) + len(r.tokens) for r in runs) + 16
    llm = Llama(model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=n_ctx, logits_all=True,
                n_threads=gate_threads(), verbose=False, seed=0)
    try:
        yield LlamaCpp(llm)
    finally:
        llm.close()


def exact_check(name: str, tokenizer: Any, reference: list[Run], candidate: list[list[int]],
                gating: bool = True, near_ties: dict[int, list[NearTie]] | None = None) -> ExactCheck:
    """Token-for-token comparison; the first divergence (prompt and position) is kept for the report.
    A prompt whose candidate differs only at accepted near-ties (by prompt index) counts as matched."""
    near_ties = near_ties or {}
    matched, divergence = 0, None
    for index, (run, got) in enumerate(zip(reference, candidate, strict=True)):
        position = next((i for i, (a, b) in enumerate(zip(run.tokens, got, strict=False)) if a != b), None)
        if (position is None and len(got) == len(run.tokens)) or index in near_ties:
            matched += 1
        elif divergence is None:
            divergence = _divergence(tokenizer, run, got, position if position is not None else len(got))
    return ExactCheck(name=name, gating=gating, prompts=len(reference), matched_prompts=matched,
                      tokens=sum(len(r.tokens) for r in reference), divergence=divergence,
                      near_ties=[tie for ties in near_ties.values() for tie in ties])


def _near_tie(tokenizer: Any, run: Run, forced: Forced, position: int) -> NearTie | None:
    """The flip at `position` as a near-tie, or None when either model is sure of its token there."""
    if position >= len(run.margins):
        return None
    reference_margin = run.margins[position]
    candidate_margin = forced.top1_logprobs[position] - forced.logprobs[position]
    if reference_margin >= NEAR_TIE_NATS or candidate_margin >= NEAR_TIE_NATS:
        return None
    div = _divergence(tokenizer, run, [*run.tokens[:position], forced.top1[position]], position)
    return NearTie(**div.model_dump(), reference_margin=round(reference_margin, 5),
                   candidate_margin=round(candidate_margin, 5))


def greedy_check(name: str, tokenizer: Any, reference: list[Run], model: LlamaCpp) -> ExactCheck:
    """Would greedy decoding in llama.cpp reproduce each reference continuation?

    Fed the reference, its top-1 must equal the reference token at every position: then greedy decoding
    follows the same path; at the first difference it leaves it. One batch per prompt instead of a decode
    step per token; the text after a divergence comes from real greedy steps. A prompt whose every
    difference is a near-tie (see the module doc) passes, with the ties listed.
    """
    candidates: list[list[int]] = []
    near_ties: dict[int, list[NearTie]] = {}
    for index, run in enumerate(reference):
        forced = model.forced(run.prompt_ids, run.tokens) if run.tokens else Forced([], [], [])
        flips = [i for i, (a, b) in enumerate(zip(forced.top1, run.tokens, strict=True)) if a != b]
        if not flips:
            candidates.append(run.tokens)
            continue
        ties = [_near_tie(tokenizer, run, forced, i) for i in flips]
        if all(tie is not None for tie in ties):
            near_ties[index] = [tie for tie in ties if tie is not None]
        prefix = run.tokens[:flips[0]]
        candidates.append(prefix + model.greedy(run.prompt_ids + prefix, CONTEXT_TOKENS))
    return exact_check(name, tokenizer, reference, candidates, near_ties=near_ties)


class ForcedModel(Protocol):
    def forced(self, prompt_ids: list[int], tokens: list[int]) -> Forced: ...


def agreement_check(variant: str, tokenizer: Any, reference: list[Run], model: ForcedModel) -> AgreementCheck:
    agree, positions, gap = 0, 0, 0.0
    first: Divergence | None = None
    for run in reference:
        if not run.tokens:
            continue
        forced = model.forced(run.prompt_ids, run.tokens)
        top1, logprobs = forced.top1, forced.logprobs
        same = [a == b for a, b in zip(top1, run.tokens, strict=True)]
        agree, positions = agree + sum(same), positions + len(same)
        gap += sum(abs(a - b) for a, b in zip(logprobs, run.logprobs, strict=True))
        if first is None and not all(same):
            position = same.index(False)
            # What this model would have said there, after the reference's prefix.
            first = _divergence(tokenizer, run, [*run.tokens[:position], top1[position]], position)
    min_top1, max_gap = THRESHOLDS.get(variant, (1.0, 0.0))
    return AgreementCheck(variant=variant, positions=positions, top1_agreement=round(agree / max(positions, 1), 4),
                          mean_logprob_gap=round(gap / max(positions, 1), 4), min_top1=min_top1, max_gap=max_gap,
                          first_disagreement=first)
