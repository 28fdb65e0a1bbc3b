"""The held-out split and how a model is measured on it.

- `split_seeds`: the recipe's usable seeds (rendered as the run renders them, those every verifier
  can check) in a stable-hash order of their ids; the first `held_out` are held out, the rest train.
- `held_out_items`: the held-out seeds as the chats the factory sends (system prompt, rendered
  prompt), with the recipe's sampling settings.
- `sample_answers`: k sampled answers per item from a transformers model, in batches (left padding),
  at the recipe's temperature and top_p, at most its max_tokens; seeded, so the same model gives the
  same answers.
- `check_answers`: each answer through every verifier of the recipe in order, as the verify stage
  does (a verifier that raises fails the answer); the verdict's reason (`ok` when every one passed).
  The code verifier runs code only in its sandbox; nothing here executes or evaluates model text.
- `held_out_eval` / `paired_test`: pass@1 from k samples with a bootstrap interval over items, and
  the paired comparison of two models on the same items.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthfactory.errors import UserError
from synthfactory.model.improve import HeldOutEval, PairedTest, SeedSplit
from synthfactory.model.lineage import stable_hash

RESAMPLES = 2000
SPLIT_SALT = "improve held-out"
NO_ANSWER = ("no_final_answer", "unparseable_answer")  # math: the answer gives no final number
SYNTAX = ("no_code_block", "syntax_error")  # code: nothing that runs


@dataclass(frozen=True)
class HeldOutItems:
    """The held-out seeds as the factory asks them, and how to check an answer."""

    recipe: Any  # synthfactory.recipe.Recipe
    seeds: list[Any] = field(default_factory=list)  # SeedRow
    prompts: list[str] = field(default_factory=list)
    chats: list[list[dict[str, str]]] = field(default_factory=list)
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256

    def __len__(self) -> int:
        return len(self.chats)


def usable_seeds(loaded: Any) -> list[tuple[Any, str]]:
    """(seed, rendered prompt) for every seed of the recipe's seeds file a verifier can check."""
    from synthfactory.inputs.seeds import load_seeds
    from synthfactory.run.plan import build_verifiers, render_seeds

    recipe = loaded.recipe
    if not recipe.verification:
        raise UserError(f"{loaded.path.name}: the loop needs a verified recipe (a `verification` section: math, code)")
    if recipe.generation.method not in ("text",):
        raise UserError(f"{loaded.path.name}: method {recipe.generation.method!r}: the loop trains on one-turn "
                        "answers (method: text)")
    if loaded.seeds_path is None or recipe.seeds.from_version or recipe.seeds.from_versions:
        raise UserError(f"{loaded.path.name}: the loop splits a seeds file (seeds.path), not published versions")
    seeds = load_seeds(recipe.seeds, loaded.seeds_path)
    rendered, _ = render_seeds(loaded, seeds)
    checks = [verifier for _, verifier in build_verifiers(recipe)]
    return [(seed, prompt) for seed, prompt in rendered if not any(v.missing(seed.fields) for v in checks)]


def split_seeds(loaded: Any, held_out: int) -> SeedSplit:
    """The split, fixed once: a stable hash of each seed id orders the usable seeds; the first
    `held_out` are held out. At least as many seeds must be left to train on."""
    usable = usable_seeds(loaded)
    ordered = sorted(usable, key=lambda pair: stable_hash(pair[0].seed_id, SPLIT_SALT))
    if held_out < 1:
        raise UserError(f"--held-out {held_out}: hold out at least 1 seed")
    if held_out > len(ordered) // 2:
        raise UserError(f"--held-out {held_out}: {loaded.recipe.seeds.path} has {len(ordered)} usable seeds; hold "
                        f"out at most half ({len(ordered) // 2}) so as many are left to train on")
    ids = [seed.seed_id for seed, _ in ordered]
    return SeedSplit(recipe=loaded.recipe.name, seeds_file=str(loaded.recipe.seeds.path),
                     held_out=ids[:held_out], train=ids[held_out:])


def held_out_items(loaded: Any, split: SeedSplit) -> HeldOutItems:
    """The split's held-out seeds as chats, in the split's order; an error when the seeds file no
    longer holds every one of them (the split is recorded; the file changed under it)."""
    by_id = {seed.seed_id: (seed, prompt) for seed, prompt in usable_seeds(loaded)}
    missing = [i for i in split.held_out if i not in by_id]
    if missing:
        raise UserError(f"{loaded.recipe.seeds.path}: {len(missing)} held-out seeds of the recorded split are no "
                        f"longer in it (the seeds file changed); start the loop on a new dataset name")
    chosen = [by_id[i] for i in split.held_out]
    generation = loaded.recipe.generation
    head = [{"role": "system", "content": generation.system_prompt}] if generation.system_prompt else []
    sampling = generation.sampling
    return HeldOutItems(recipe=loaded.recipe, seeds=[s for s, _ in chosen], prompts=[p for _, p in chosen],
                        chats=[[*head, {"role": "user", "content": p}] for _, p in chosen],
                        temperature=float(sampling.temperature), top_p=float(sampling.top_p or 1.0),
                        max_new_tokens=int(sampling.max_tokens))


def sample_answers(model: Any, tokenizer: Any, items: HeldOutItems, samples: int, seed: int = 0,
                   batch_size: int = 32, on_batch: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """`samples` answers per item (sampled; greedy at temperature 0), batched with left padding."""
    import torch
    from transformers import GenerationConfig

    if samples < 1:
        raise UserError(f"--samples {samples}: sample at least 1 answer per held-out item")
    greedy = items.temperature <= 0
    settings = GenerationConfig(do_sample=not greedy, temperature=items.temperature if not greedy else None,
                                top_p=items.top_p if not greedy else None, top_k=None if not greedy else None,
                                max_new_tokens=items.max_new_tokens, num_beams=1,
                                num_return_sequences=1 if greedy else samples,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    prompts = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in items.chats]
    per_call = max(1, batch_size // (1 if greedy else samples))
    answers: list[list[str]] = []
    model.eval()
    try:
        for start in range(0, len(prompts), per_call):
            chunk = prompts[start:start + per_call]
            torch.manual_seed(seed + start)
            inputs = tokenizer(chunk, add_special_tokens=False, return_tensors="pt", padding=True).to(device)
            with torch.no_grad():
                output = model.generate(**inputs, generation_config=settings)
            texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            step = 1 if greedy else samples
            for i in range(len(chunk)):
                got = [t.strip() for t in texts[i * step:(i + 1) * step]]
                answers.append(got * samples if greedy else got)
            if on_batch:
                on_batch(min(start + per_call, len(prompts)), len(prompts))
    finally:
        tokenizer.padding_side = side
    return answers


def check_answers(items: HeldOutItems, answers: list[list[str]]) -> list[list[str]]:
    """The verdict reason of every answer (`ok`: every verifier passed it), per item: the probe's
    `check_claims`, which the task accuracy of `synthfactory probe` uses too."""
    from synthfactory.probe.tasks import check_claims
    from synthfactory.verify.base import Claim

    flat = [(i, a) for i, group in enumerate(answers) for a in group]
    claims = [Claim(response=a, seed=items.seeds[i].fields, prompt=items.prompts[i]) for i, a in flat]
    out: list[list[str]] = [[] for _ in answers]
    for (i, _), reason in zip(flat, check_claims(items.recipe, claims), strict=True):
        out[i].append(reason)
    return out


def family(reason: str) -> str:
    """A verdict reason's family: the part before its first colon (`wrong_answer: got 3` -> `wrong_answer`)."""
    return reason.split(":", 1)[0].strip() or "failed"


def percentile_interval(values: list[float]) -> list[float] | None:
    if not values:
        return None
    values = sorted(values)
    return [values[int(0.025 * (len(values) - 1))], values[int(math.ceil(0.975 * (len(values) - 1)))]]


def breakdown(reasons: list[list[str]], methods: Sequence[str]) -> dict[str, float | None]:
    """What the accuracy is made of, over every answer. Math (`math_answer`): the share with no final
    answer, and the accuracy of those that give one. Code (`python_tests`): the share with no runnable
    code (no block, a syntax error), the share that runs and fails its tests, and the accuracy of
    those that run."""
    flat = [family(r) for group in reasons for r in group]
    n = len(flat)
    if not n:
        return {}
    right = flat.count("ok")
    out: dict[str, float | None] = {}
    if "math_answer" in methods:
        missing = sum(f in NO_ANSWER for f in flat)
        out["no_final_answer_share"] = missing / n
        out["accuracy_when_answered"] = right / (n - missing) if n > missing else None
    if "python_tests" in methods:
        missing = sum(f in SYNTAX for f in flat)
        out["no_runnable_code_share"] = missing / n
        out["tests_failed_share"] = sum(f in ("tests_failed", "solution_error") for f in flat) / n
        out["accuracy_when_runnable"] = right / (n - missing) if n > missing else None
    return out


EXAMPLES = 4


def held_out_eval(reasons: list[list[str]], items: HeldOutItems, seconds: float = 0.0, seed: int = 0,
                  answers: list[list[str]] | None = None) -> HeldOutEval:
    """pass@1 from the verdicts: the mean over items of each item's share of right answers, with a 95%
    percentile bootstrap interval over items."""
    per_item = [sum(r == "ok" for r in group) / len(group) for group in reasons if group]
    n = len(per_item)
    rng = random.Random(seed)
    means = [sum(per_item[rng.randrange(n)] for _ in range(n)) / n for _ in range(RESAMPLES if n > 1 else 0)]
    counts = Counter(family(r) for group in reasons for r in group)
    methods = [c.method for c in items.recipe.verification]
    return HeldOutEval(items=n, samples=max((len(g) for g in reasons), default=0), temperature=items.temperature,
                       max_new_tokens=items.max_new_tokens, pass_at_1=sum(per_item) / n if n else 0.0,
                       interval=percentile_interval(means), per_item=per_item, reasons=dict(counts.most_common()),
                       breakdown=breakdown(reasons, methods), seconds=round(seconds, 1),
                       examples=[{"prompt": items.prompts[i], "answer": given[0], "reason": reasons[i][0]}
                                 for i, given in enumerate((answers or [])[:EXAMPLES]) if given])


def paired_test(current: Sequence[float], candidate: Sequence[float], against_round: int,
                seed: int = 0) -> PairedTest:
    """Candidate minus current over the same items: the mean difference, a 95% paired bootstrap
    interval, and a one-sided sign-flip permutation p-value (how often flipping the signs of the
    per-item differences at random gives a mean at least as high). Better: the interval is above 0."""
    if len(current) != len(candidate):
        raise ValueError("a paired test needs the same items under both models")
    diffs = [b - a for a, b in zip(current, candidate, strict=True)]
    n = len(diffs)
    if n == 0:
        return PairedTest(against_round=against_round, delta=0.0)
    delta = sum(diffs) / n
    rng = random.Random(seed)
    boot = [sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(RESAMPLES if n > 1 else 0)]
    flips = [sum(d if rng.random() < 0.5 else -d for d in diffs) / n for _ in range(RESAMPLES)]
    p_value = (1 + sum(f >= delta - 1e-12 for f in flips)) / (1 + len(flips))
    interval = percentile_interval(boot)
    return PairedTest(against_round=against_round, delta=delta, interval=interval, p_value=round(p_value, 4),
                      better=bool(interval and interval[0] > 0))
