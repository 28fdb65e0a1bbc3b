"""Task accuracy (the probe's third measure): for a verified recipe (math, code), the share of
held-out seeds the model answers right, base and tuned on the same seeds.

- held out: seeds of the recipe's seeds file that the probed version has no row from (its rows'
  `seed_id`, which is `"s" + stable_hash(fields)` of a file seed), in a fixed hash order, capped;
- asked as the factory asks: the recorded recipe's system prompt and its prompt template rendered
  by the run planner's renderer (`render_seeds`), one greedy answer of at most
  min(sampling.max_tokens, MAX_NEW_TOKENS) tokens;
- right when every one of the recipe's verifiers passes it, as the verify stage requires. The code
  verifier runs generated code only in its sandbox; nothing here executes or evaluates model text.

The recorded recipe holds no file paths of its own, so its seeds file is found beside the recipe of
the same name under `recipes/` (where `synthfactory run recipes/NAME.yaml` read it); when that is
not there, task accuracy is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthfactory.errors import RecipeError, UserError
from synthfactory.model.lineage import stable_hash

TASK_ACCURACY = "task_accuracy"
TASK_ITEMS = 8
MAX_NEW_TOKENS = 384
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
ANSWER_METHODS = ("text", "preference")  # methods whose row answers the rendered prompt in one turn


@dataclass(frozen=True)
class TaskSet:
    """Held-out seeds of a verified recipe, each as the chat the factory sends, and how to check answers."""

    description: str
    recipe: Any  # synthfactory.recipe.Recipe (the recorded one)
    seeds: list[Any] = field(default_factory=list)  # SeedRow
    prompts: list[str] = field(default_factory=list)
    chats: list[list[dict[str, str]]] = field(default_factory=list)
    max_new_tokens: int = MAX_NEW_TOKENS
    name: str = TASK_ACCURACY

    @property
    def key(self) -> str:
        checks = [c.model_dump(mode="json") for c in self.recipe.verification]
        return stable_hash(self.name, self.chats, [s.fields for s in self.seeds], checks, self.max_new_tokens)

    def __len__(self) -> int:
        return len(self.chats)


def recipe_file(name: str, recipes_dir: Path | None = None) -> Path | None:
    """`recipes/{name}.yaml`: where the recipe a version records was read from (None: not here)."""
    path = (recipes_dir or RECIPES_DIR) / f"{name}.yaml"
    return path if name and path.is_file() else None


def held_out(rendered: list[tuple[Any, str]], used: set[str], items: int) -> list[tuple[Any, str]]:
    """The (seed, prompt) pairs whose seed no row of the version came from, in a fixed order (a hash
    of the seed id, so the first few mix the file's templates) and at most `items` of them."""
    fresh = [(seed, prompt) for seed, prompt in rendered if seed.seed_id not in used]
    return sorted(fresh, key=lambda pair: stable_hash(pair[0].seed_id, "probe task"))[:max(0, items)]


def task_set(recipe: dict[str, Any], used_seed_ids: set[str], items: int = TASK_ITEMS,
             recipes_dir: Path | None = None) -> tuple[TaskSet | None, str | None]:
    """The task set of a version's recorded `recipe`, or (None, why it cannot be measured); (None, None)
    when `items` is 0 (task accuracy off)."""
    from pydantic import ValidationError

    from synthfactory.inputs.seeds import load_seeds
    from synthfactory.recipe import LoadedRecipe, Recipe, load_recipe
    from synthfactory.run.plan import build_verifiers, render_seeds

    if items <= 0:
        return None, None
    name = recipe.get("name") or ""
    if not recipe.get("verification"):
        return None, f"recipe {name!r} has no verification (task accuracy is for verified recipes: math, code)"
    try:
        recorded = Recipe.model_validate(recipe)
    except ValidationError as exc:
        return None, f"the recorded recipe {name!r} no longer validates ({exc.error_count()} errors)"
    method = recorded.generation.method
    if method not in ANSWER_METHODS:
        return None, f"method {method!r}: its rows do not answer the rendered prompt in one turn"
    if recorded.seeds.path is None or recorded.seeds.from_version or recorded.seeds.from_versions:
        return None, f"recipe {name!r} seeds from published versions, not (only) a seeds file"
    if any(c.method == "python_tests" for c in recorded.verification):
        from synthfactory.verify.sandbox import sandbox_kind

        kind, reason = sandbox_kind()
        if kind != "bubblewrap":  # the probe runs generated code only where it is isolated
            return None, f"python_tests needs the bubblewrap sandbox to run generated code here ({reason})"
    path = recipe_file(name, recipes_dir)
    if path is None:
        return None, f"no recipe file {name}.yaml under {recipes_dir or RECIPES_DIR} to find its seeds file"
    try:
        loaded = load_recipe(path)
    except RecipeError as exc:
        return None, f"{path.name}: {exc}"
    if loaded.recipe.seeds.path != recorded.seeds.path or loaded.seeds_path is None:
        return None, (f"{path.name} now reads seeds {loaded.recipe.seeds.path!r}, the version was made from "
                      f"{recorded.seeds.path!r}")
    try:
        seeds = load_seeds(recorded.seeds, loaded.seeds_path)
    except (RecipeError, UserError) as exc:
        return None, f"seeds of {path.name}: {exc}"
    as_recorded = LoadedRecipe(recipe=recorded, path=path, seeds_path=loaded.seeds_path,
                               suite_path=loaded.suite_path, recipe_hash="")
    rendered, _ = render_seeds(as_recorded, seeds)
    checks = [verifier for _, verifier in build_verifiers(recorded)]
    rendered = [(seed, prompt) for seed, prompt in rendered if not any(v.missing(seed.fields) for v in checks)]
    chosen = held_out(rendered, used_seed_ids, items)
    if not chosen:
        return None, f"every usable seed of {loaded.recipe.seeds.path} has rows in this version: none is held out"
    system = recorded.generation.system_prompt
    head = [{"role": "system", "content": system}] if system else []
    budget = min(recorded.generation.sampling.max_tokens, MAX_NEW_TOKENS)
    verifiers = ", ".join(c.method for c in recorded.verification)
    return TaskSet(
        description=(f"share of {len(chosen)} held-out seeds of {loaded.recipe.seeds.path} (no row of this version "
                     f"came from them) answered right by {verifiers}; greedy, at most {budget} new tokens"),
        recipe=recorded, seeds=[s for s, _ in chosen], prompts=[p for _, p in chosen],
        chats=[[*head, {"role": "user", "content": p}] for _, p in chosen], max_new_tokens=budget), None


def generate_answers(model: Any, tokenizer: Any, tasks: TaskSet,
                     on_item: Callable[[], None] | None = None) -> list[str]:
    """One greedy answer per chat, in the model's chat template (the same for every call)."""
    import torch
    from transformers import GenerationConfig

    settings = GenerationConfig(do_sample=False, max_new_tokens=tasks.max_new_tokens, num_beams=1,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    device = next(model.parameters()).device
    answers = []
    for chat in tasks.chats:
        prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(device)
        with torch.no_grad():
            output = model.generate(**inputs, generation_config=settings)
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        if on_item:
            on_item()
    return answers


def check_claims(recipe: Any, claims: list[Any], errors: list[str] | None = None) -> list[str]:
    """Per claim: the verdict reason of the first of the recipe's verifiers (in recipe order) that
    fails it, or `ok` when every one passes, as the run's verify stage requires. A verifier that
    raises on a claim fails it (`verifier_error: NAME: Error`; generated text is hostile input, and the
    run's verify stage quarantines such a row); each such error is appended to `errors` ("item i:
    verifier: cause") so callers count and report them instead of hiding them in an accuracy."""
    from synthfactory.run.plan import build_verifiers

    reasons = ["ok"] * len(claims)
    for name, verifier in build_verifiers(recipe):
        todo = [i for i, reason in enumerate(reasons) if reason == "ok"]
        try:
            verdicts = [(v.passed, v.reason) for v in verifier.verify_many([claims[i] for i in todo])]
        except Exception:  # find the claim that breaks it, one at a time
            verdicts = []
            for i in todo:
                try:
                    verdict = verifier.verify(claims[i])
                    verdicts.append((verdict.passed, verdict.reason))
                except Exception as exc:  # a failed answer, counted, not a failed measure
                    verdicts.append((False, f"verifier_error: {name}: {type(exc).__name__}"))
                    if errors is not None:
                        errors.append(f"item {i}: {name}: {type(exc).__name__}: {str(exc)[:200]}")
        for i, (passed, reason) in zip(todo, verdicts, strict=True):
            if not passed:
                reasons[i] = str(reason or "failed")
    return reasons


def verify_answers(tasks: TaskSet, answers: list[str], errors: list[str] | None = None) -> list[bool]:
    """Per answer: did every verifier of the recipe pass it (`check_claims`)?"""
    from synthfactory.verify.base import Claim

    claims = [Claim(response=a, seed=s.fields, prompt=p) for a, s, p in zip(answers, tasks.seeds, tasks.prompts,
                                                                            strict=True)]
    return [reason == "ok" for reason in check_claims(tasks.recipe, claims, errors)]
