"""Deterministic run planning: which seed and sample goes in which batch, under which id."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.meta

from synthfactory.engines.base import EngineSpec
from synthfactory.errors import RecipeError, UserError
from synthfactory.inputs.seeds import QuarantinedRow, SeedRow, SeedSet, load_seeds
from synthfactory.model.lineage import batch_id_for, sampling_seed, stable_hash
from synthfactory.model.plan import BatchPlan, RunPlan, WorkItem
from synthfactory.recipe import LLM_JUDGES, GenerationConfig, LoadedRecipe, Recipe, template_environment
from synthfactory.recipe.options import judge_engine
from synthfactory.registry import JUDGES, VERIFIERS

if TYPE_CHECKING:
    from synthfactory.quality.guards import QualityGuards

__all__ = ["BatchPlan", "RunPlan", "WorkItem", "plan_run", "engine_specs_for", "render_seeds", "build_verifiers"]


def judge_specs(loaded: LoadedRecipe) -> tuple[EngineSpec, tuple[EngineSpec | None, ...]]:
    """The generator's engine and each judge's (None for judges that are not LLMs). Specs that
    differ only in log-probabilities become one with them on, so a self-grading recipe (or a panel
    of json and logprobs judges on one model) shares the same actors."""
    gen, grading = loaded.recipe.generation, loaded.recipe.grading
    generator = EngineSpec(gen.engine, gen.model, gen.options)
    judges = [EngineSpec(*judge_engine(j, gen), logprobs=JUDGES.fact(j.method, "logprobs", False))
              if j.method in LLM_JUDGES else None for j in (grading.panel if grading is not None else [])]
    specs = [generator, *(j for j in judges if j is not None)]
    wants = {replace(s, logprobs=False) for s in specs if s.logprobs}

    def settled(spec: EngineSpec) -> EngineSpec:
        return replace(spec, logprobs=True) if replace(spec, logprobs=False) in wants else spec

    return settled(generator), tuple(settled(j) if j is not None else None for j in judges)


def engine_specs_for(loaded: LoadedRecipe) -> list[EngineSpec]:
    """Every engine a run starts: the generator's and each LLM judge's, once per distinct spec."""
    generator, judges = judge_specs(loaded)
    return list({s.key: s for s in (generator, *(j for j in judges if j is not None))}.values())


def template_hash(generation: GenerationConfig) -> str:
    """Hash of what the generator is told: system prompt and template, plus the method and its
    options for every method but `text` (whose rows keep the hash they always had)."""
    if generation.method == "text":
        return stable_hash(generation.system_prompt, generation.prompt_template)
    return stable_hash(generation.system_prompt, generation.prompt_template, generation.method,
                       generation.method_options)


def run_id_for(dataset: str, version: int, recipe_hash: str) -> str:
    """Same dataset, version and recipe: same run id, so a resumed run keeps its identity."""
    return f"{dataset}-v{version}-{recipe_hash[:8]}"


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def prompt_key(prompt: str) -> str:
    """What makes two prompts the same to a model: case and runs of whitespace do not count."""
    return " ".join(prompt.casefold().split())


def render_seeds(loaded: LoadedRecipe, seeds: SeedSet, contaminated: Callable[[str], str | None] | None = None
                 ) -> tuple[list[tuple[SeedRow, str]], list[QuarantinedRow]]:
    """Each usable seed with its rendered prompt; the rest quarantined before any engine time:
    a template variable that is empty (`empty_field: topic`), a prompt that renders the same as an
    earlier seed's (`duplicate_seed`), a prompt carrying benchmark text (`contaminated:<name>`)."""
    source = loaded.recipe.generation.prompt_template
    environment = template_environment()
    template = environment.from_string(source)
    variables = sorted(jinja2.meta.find_undeclared_variables(environment.parse(source)))
    rendered: list[tuple[SeedRow, str]] = []
    quarantined = list(seeds.quarantined)
    seen: dict[str, str] = {}
    for seed in seeds.rows:
        payload = json.dumps(seed.fields, ensure_ascii=False, default=str)
        location = seed.location or seed.seed_id
        empty = [name for name in variables if name in seed.fields and _blank(seed.fields[name])]
        if empty:
            quarantined.append(QuarantinedRow("seeds", f"empty_field: {', '.join(empty)}", payload, location))
            continue
        try:
            prompt = template.render(**seed.fields).strip()
        except jinja2.UndefinedError as exc:
            quarantined.append(QuarantinedRow("seeds", f"template_error: {exc.message}", payload, location))
            continue
        key = prompt_key(prompt)
        if key in seen:
            quarantined.append(QuarantinedRow("seeds", f"duplicate_seed: renders the same prompt as {seen[key]}",
                                              payload, location))
            continue
        seen[key] = location
        bench = contaminated(prompt) if contaminated is not None else None
        if bench:
            quarantined.append(QuarantinedRow("seeds", f"contaminated:{bench} (the rendered prompt shares an "
                                                       "n-gram with it)", payload, location))
            continue
        rendered.append((seed, prompt))
    return rendered, quarantined


def screen_seed_tests(loaded: LoadedRecipe, rendered: list[tuple[SeedRow, str]]
                      ) -> tuple[list[tuple[SeedRow, str]], list[QuarantinedRow]]:
    """Seeds whose tests a verifier finds too weak (python_tests' `min_mutation_score`: mutants of
    the seed's `reference` its tests do not kill) quarantined as `weak_tests: ...` before any engine
    time. Only the seeds the run will use are checked (their results are cached), taking the next
    seeds in order in place of the ones refused."""
    screens = [verifier for _, verifier in build_verifiers(loaded.recipe) if verifier.screens_seeds()]
    if not screens:
        return rendered, []
    recipe = loaded.recipe
    per_seed = recipe.generation.samples_per_seed
    space = recipe.batches.count * recipe.batches.size if recipe.batches.count else len(rendered) * per_seed
    total = min(space, recipe.batches.max_candidates) if recipe.batches.max_candidates else space
    wanted = min(len(rendered), -(-total // per_seed))
    kept: list[tuple[SeedRow, str]] = []
    refused: list[QuarantinedRow] = []
    position = 0
    while len(kept) < wanted and position < len(rendered):
        chunk = rendered[position:position + wanted - len(kept)]
        position += len(chunk)
        reasons: list[str | None] = [None] * len(chunk)
        for verifier in screens:
            for k, reason in enumerate(verifier.weak_seeds([seed.fields for seed, _ in chunk])):
                reasons[k] = reasons[k] or reason
        for (seed, prompt), reason in zip(chunk, reasons, strict=True):
            if reason:
                payload = json.dumps(seed.fields, ensure_ascii=False, default=str)
                refused.append(QuarantinedRow("seeds", reason, payload, seed.location or seed.seed_id))
            else:
                kept.append((seed, prompt))
    return kept + rendered[position:], refused


def batch_bounds(total: int, size: int) -> list[tuple[int, int]]:
    """[start, end) of each batch. A trailing batch of fewer than half `size` rows joins the one
    before it, so set-level expectations (diversity, near-dup rate) never judge a sliver."""
    bounds = [(start, min(total, start + size)) for start in range(0, total, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < (size + 1) // 2:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def plan_run(loaded: LoadedRecipe, seeds: SeedSet, version: int,
             contaminated: Callable[[str], str | None] | None = None) -> RunPlan:
    """Render every prompt once, screen the seeds, and cut the work into batches of `batches.size`."""
    recipe = loaded.recipe
    rendered, quarantined = render_seeds(loaded, seeds, contaminated)
    rendered, weak = screen_seed_tests(loaded, rendered)
    quarantined += weak
    if not rendered:
        reasons = sorted({q.reason.split(":")[0] for q in quarantined}) or ["the file is empty"]
        source = loaded.seeds_path or loaded.recipe.seeds.from_version or loaded.recipe.seeds.from_versions
        raise RecipeError(f"seeds: no usable seed rows in {source} ({', '.join(reasons)})")

    per_seed = recipe.generation.samples_per_seed
    size = recipe.batches.size
    space = recipe.batches.count * size if recipe.batches.count else len(rendered) * per_seed
    cap = recipe.batches.max_candidates
    total = min(space, cap) if cap else space
    system = recipe.generation.system_prompt
    batches = []
    for batch_index, (first, end) in enumerate(batch_bounds(total, size)):
        items = []
        for row_index, k in enumerate(range(first, end)):
            seed, prompt = rendered[(k // per_seed) % len(rendered)]
            messages = ({"role": "system", "content": system},) if system else ()
            items.append(WorkItem(
                row_index=row_index, seed=seed, sample_index=k // len(rendered) // per_seed * per_seed + k % per_seed,
                prompt=prompt, messages=messages + ({"role": "user", "content": prompt},),
                sampling_seed=sampling_seed(recipe.generation.sampling.seed, version, batch_index, row_index),
            ))
        batches.append(BatchPlan(batch_id_for(loaded.recipe_hash, version, batch_index), batch_index, tuple(items)))
    generator, judges = judge_specs(loaded)
    judge = next((j for j in judges if j is not None), generator)
    check_verifiers_can_run(loaded.recipe)
    check_seed_fields(loaded, [seed for seed, _ in rendered])
    panel = recipe.grading.panel if recipe.grading is not None else []
    label = None if recipe.grading is None or recipe.grading.judges is None else "panel: " + ", ".join(
        f"{c.name} ({c.method}{', ' + s.model if s is not None else ''}{', observer' if c.weight == 0 else ''})"
        for c, s in zip(panel, judges, strict=True))
    return RunPlan(
        dataset=recipe.name, version=version, run_id=run_id_for(recipe.name, version, loaded.recipe_hash),
        recipe_hash=loaded.recipe_hash, template_hash=template_hash(recipe.generation),
        generator=generator, judge=judge, batches=tuple(batches), seeds_quarantined=tuple(quarantined),
        seeds_recycled=sum(s.recycled for s in seeds.rows), seed_versions=tuple(seeds.versions),
        judges=judges, panel_label=label, capped=total < space, judged=recipe.grading is not None,
    )


def check_seed_file(loaded: LoadedRecipe) -> None:
    """The seed contract checked on the seeds file itself, before Ray, Prefect or any engine start
    (the CLI calls it); seeds from published versions are checked when the run is planned."""

    recipe = loaded.recipe
    check_verifiers_can_run(recipe)
    if loaded.seeds_path is None or recipe.seeds.from_versions or \
            not any(VERIFIERS.fact(v.method, "needs", ()) for v in recipe.verification):
        return
    check_seed_fields(loaded, load_seeds(recipe.seeds, loaded.seeds_path).rows)


def check_verifiers_can_run(recipe: Recipe) -> None:
    """Each verifier's preflight (python_tests: a sandbox to run generated code in): one that cannot
    run here is a UserError naming the fix, before any engine starts (exit 2)."""
    for config, (_, verifier) in zip(recipe.verification, build_verifiers(recipe), strict=True):
        why = verifier.preflight()
        if why:
            raise UserError(f"verification {config.name!r} ({config.method}): {why}")


def build_verifiers(recipe: Recipe) -> list[tuple[str, Any]]:
    """(name, verifier) for each of `recipe.verification`, from the registry, with its options."""
    built = []
    for config in recipe.verification:
        cls = VERIFIERS.load(config.method)
        built.append((config.name, cls(cls.Options(**config.options))))
    return built


def check_seed_fields(loaded: LoadedRecipe, seeds: list[SeedRow]) -> None:
    """The seed contract: a verifier's `needs` (the registry's fact) must be fields of the seeds.
    No seed has one: a RecipeError before any batch (exit 2). Some seeds lack it: their rows are
    quarantined at verify (`missing_seed_field`), not here."""
    have = sorted({k for seed in seeds for k, v in seed.fields.items() if v not in (None, "")})
    for i, config in enumerate(loaded.recipe.verification):
        for need in VERIFIERS.fact(config.method, "needs", ()):
            if not set(need.split("|")) & set(have):
                need = " or ".join(need.split("|"))
                source = loaded.seeds_path or loaded.recipe.seeds.from_version or loaded.recipe.seeds.from_versions
                raise RecipeError(f"verification[{i}] ({config.method}) needs seed field '{need}'; "
                                  f"{source} has: {', '.join(have) or 'no fields'}")


def run_seeds(loaded: LoadedRecipe, guards: QualityGuards, dataset_uri: str) -> SeedSet:
    """The seeds a run of `loaded` uses: its file or published versions, with the real share mixed
    in; seeds a file calls real that near-match published synthetic rows flagged as recycled."""
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path, own=dataset_uri, real_texts=guards.real_texts)
    if loaded.seeds_path is not None and not seeds.versions:
        seeds = guards.flag_recycled(seeds)
    return seeds
