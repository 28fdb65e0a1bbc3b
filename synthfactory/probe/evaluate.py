"""What a probe measures, base and tuned on the same items: perplexity per item (its summed negative
log-likelihood and token count), or task accuracy (right or wrong per item), and the paired
bootstrap of the difference.

- real text: every token of a passage (language modelling, as Shumailov et al. measure collapse);
- answers: only the assistant turn's tokens, given the chat before it (with the model's own chat
  template), which is what SFT trains.

Pairing matters: the same items are scored by both models, so the interval is of the difference,
resampled over items, not of two independent means.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 512
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class ItemLoss:
    """One eval item under one model: summed negative log-likelihood (nats) over `tokens` tokens."""

    nll: float
    tokens: int


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _nll(model: Any, ids: list[int], start: int) -> ItemLoss:
    """NLL of ids[start:] given everything before them (one forward pass, truncated to MAX_LENGTH)."""
    import torch

    ids = ids[:MAX_LENGTH]
    start = max(1, start)
    if start >= len(ids):
        return ItemLoss(0.0, 0)
    tensor = torch.tensor([ids], device=_device(model))
    with torch.no_grad():
        logits = model(input_ids=tensor).logits[0, :-1].float()
    targets = tensor[0, 1:]
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")[start - 1:]
    return ItemLoss(float(losses.sum()), int(losses.numel()))


def text_losses(model: Any, tokenizer: Any, texts: Sequence[str],
                on_item: Callable[[], None] | None = None) -> list[ItemLoss]:
    """Every token of each text after the first (a BOS token first where the tokenizer has one)."""
    out = []
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(_nll(model, bos + ids, len(bos) if bos else 1))
        if on_item:
            on_item()
    return out


def answer_losses(model: Any, tokenizer: Any, chats: Sequence[list[dict[str, str]]],
                  on_item: Callable[[], None] | None = None) -> list[ItemLoss]:
    """The last (assistant) turn's tokens of each chat, given the turns before it, in the chat template."""
    out = []
    for chat in chats:
        prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(chat, tokenize=False)
        if not full.startswith(prompt):  # a template that rewrites earlier turns: score the answer alone
            prompt, full = "", chat[-1]["content"]
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        out.append(_nll(model, prompt_ids + answer_ids, len(prompt_ids)))
        if on_item:
            on_item()
    return out


def perplexity(losses: Sequence[ItemLoss]) -> float:
    """exp(total NLL / total tokens): the corpus perplexity of the items (token-weighted)."""
    tokens = sum(x.tokens for x in losses)
    return math.exp(sum(x.nll for x in losses) / tokens) if tokens else float("nan")


def paired_bootstrap(base: Sequence[ItemLoss], tuned: Sequence[ItemLoss], resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> dict[str, Any]:
    """Perplexity base and tuned, their difference (tuned - base) and relative change, each difference
    with a 95% percentile interval from resampling the items (the same items for both models)."""
    if len(base) != len(tuned):
        raise ValueError("paired bootstrap needs the same items under both models")
    n = len(base)
    ppl_base, ppl_tuned = perplexity(base), perplexity(tuned)
    rng = random.Random(seed)
    deltas, relatives = [], []
    for _ in range(resamples if n > 1 else 0):
        idx = [rng.randrange(n) for _ in range(n)]
        b, t = perplexity([base[i] for i in idx]), perplexity([tuned[i] for i in idx])
        deltas.append(t - b)
        relatives.append(t / b - 1.0)
    return {"items": n, "tokens": sum(x.tokens for x in base), "base": ppl_base, "tuned": ppl_tuned,
            "delta": ppl_tuned - ppl_base, "delta_interval": _percentile_interval(deltas),
            "relative": ppl_tuned / ppl_base - 1.0, "relative_interval": _percentile_interval(relatives)}


def _percentile_interval(values: list[float]) -> list[float] | None:
    if not values:
        return None
    values = sorted(values)
    return [values[int(0.025 * (len(values) - 1))], values[int(math.ceil(0.975 * (len(values) - 1)))]]


def paired_accuracy(base: Sequence[bool], tuned: Sequence[bool], resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = 0) -> dict[str, Any]:
    """Accuracy base and tuned (share of items right) and their difference (tuned - base), with a 95%
    percentile interval from resampling the items (the same items, right or wrong, for both models)."""
    if len(base) != len(tuned):
        raise ValueError("paired bootstrap needs the same items under both models")
    n = len(base)
    if n == 0:
        return {"items": 0, "metric": "accuracy", "base": None, "tuned": None, "delta": None, "delta_interval": None}
    rng = random.Random(seed)
    deltas = []
    for _ in range(resamples if n > 1 else 0):
        idx = [rng.randrange(n) for _ in range(n)]
        deltas.append(sum(bool(tuned[i]) - bool(base[i]) for i in idx) / n)
    accuracy_base, accuracy_tuned = sum(map(bool, base)) / n, sum(map(bool, tuned)) / n
    return {"items": n, "metric": "accuracy", "base": accuracy_base, "tuned": accuracy_tuned,
            "delta": accuracy_tuned - accuracy_base, "delta_interval": _percentile_interval(deltas),
            "right": [sum(map(bool, base)), sum(map(bool, tuned))]}
