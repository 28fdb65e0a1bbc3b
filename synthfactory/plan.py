"""Deterministic run planning: which seed and sample goes in which batch, under which id."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

import jinja2

from synthfactory.engines.base import EngineSpec
from synthfactory.errors import RecipeError
from synthfactory.lineage import batch_id_for, sampling_seed, stable_hash
from synthfactory.recipe import LoadedRecipe, template_environment
from synthfactory.seeds import QuarantinedRow, SeedRow, SeedSet


@dataclass(frozen=True)
class WorkItem:
    """One generation request of a batch, with everything lineage needs."""

    row_index: int
    seed: SeedRow
    sample_index: int
    prompt: str
    messages: tuple[dict[str, str], ...]
    sampling_seed: int


@dataclass(frozen=True)
class BatchPlan:
    batch_id: str
    batch_index: int
    items: tuple[WorkItem, ...]


@dataclass(frozen=True)
class RunPlan:
    """Everything a run will do, fixed before any engine starts."""

    dataset: str
    version: int
    run_id: str
    recipe_hash: str
    template_hash: str
    generator: EngineSpec
    judge: EngineSpec
    batches: tuple[BatchPlan, ...]
    seeds_quarantined: tuple[QuarantinedRow, ...] = field(default=())
    seeds_recycled: int = 0

    @property
    def engine_specs(self) -> list[EngineSpec]:
        return [self.generator] if self.judge.key == self.generator.key else [self.generator, self.judge]


def engine_specs_for(loaded: LoadedRecipe) -> tuple[EngineSpec, EngineSpec]:
    """Generator and judge engines; a self-grading recipe gets one spec, so both share actors."""
    gen, grading = loaded.recipe.generation, loaded.recipe.grading
    wants_logprobs = grading.method == "logprobs"
    generator = EngineSpec.from_options(gen.engine, gen.model, gen.options)
    judge = EngineSpec.from_options(grading.engine or gen.engine, grading.model or gen.model,
                                    grading.options or gen.options, logprobs=wants_logprobs)
    if replace(generator, logprobs=wants_logprobs) == judge:
        return judge, judge
    return generator, judge


def run_id_for(dataset: str, version: int, recipe_hash: str) -> str:
    """Same dataset, version and recipe: same run id, so a resumed run keeps its identity."""
    return f"{dataset}-v{version}-{recipe_hash[:8]}"


def plan_run(loaded: LoadedRecipe, seeds: SeedSet, version: int) -> RunPlan:
    """Render every prompt once and cut the work into batches of `batches.size`."""
    recipe = loaded.recipe
    template = template_environment().from_string(recipe.generation.prompt_template)
    rendered: list[tuple[SeedRow, str]] = []
    quarantined = list(seeds.quarantined)
    for seed in seeds.rows:
        try:
            rendered.append((seed, template.render(**seed.fields).strip()))
        except jinja2.UndefinedError as exc:
            payload = json.dumps(seed.fields, ensure_ascii=False, default=str)
            quarantined.append(QuarantinedRow("seeds", f"template_error: {exc.message}", payload, seed.seed_id))
    if not rendered:
        reasons = sorted({q.reason.split(":")[0] for q in quarantined}) or ["the file is empty"]
        source = loaded.seeds_path or loaded.recipe.seeds.from_version
        raise RecipeError(f"seeds: no usable seed rows in {source} ({', '.join(reasons)})")

    per_seed = recipe.generation.samples_per_seed
    size = recipe.batches.size
    total = recipe.batches.count * size if recipe.batches.count else len(rendered) * per_seed
    count = math.ceil(total / size)
    system = recipe.generation.system_prompt
    batches = []
    for batch_index in range(count):
        items = []
        for row_index, k in enumerate(range(batch_index * size, min(total, (batch_index + 1) * size))):
            seed, prompt = rendered[(k // per_seed) % len(rendered)]
            messages = ({"role": "system", "content": system},) if system else ()
            items.append(WorkItem(
                row_index=row_index, seed=seed, sample_index=k // len(rendered) // per_seed * per_seed + k % per_seed,
                prompt=prompt, messages=messages + ({"role": "user", "content": prompt},),
                sampling_seed=sampling_seed(recipe.generation.sampling.seed, version, batch_index, row_index),
            ))
        batches.append(BatchPlan(batch_id_for(loaded.recipe_hash, version, batch_index), batch_index, tuple(items)))
    generator, judge = engine_specs_for(loaded)
    return RunPlan(
        dataset=recipe.name, version=version, run_id=run_id_for(recipe.name, version, loaded.recipe_hash),
        recipe_hash=loaded.recipe_hash, template_hash=stable_hash(system, recipe.generation.prompt_template),
        generator=generator, judge=judge, batches=tuple(batches), seeds_quarantined=tuple(quarantined),
        seeds_recycled=sum(s.recycled for s in seeds.rows),
    )
