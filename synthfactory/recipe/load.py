"""Loading a recipe: read the YAML, validate it, resolve the files it names, and hash it all.

Its hash (recipe plus the content of every file it names) goes on every row.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from synthfactory.errors import RecipeError
from synthfactory.recipe.columns import recipe_schema
from synthfactory.recipe.options import settle_options
from synthfactory.recipe.schema import Recipe, _message


class LoadedRecipe(BaseModel):
    """A validated recipe with its file paths resolved and its content hash computed."""

    model_config = ConfigDict(frozen=True)

    recipe: Recipe
    path: Path
    seeds_path: Path | None
    suite_path: Path
    recipe_hash: str
    files: dict[str, Path] = {}  # every other file the recipe names (benchmarks, reference, real data)


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        message = _message(err)
        parts.append(message if not loc or message.startswith(("generation.", f"{loc}.")) else f"{loc}: {message}")
    return "; ".join(parts)


def _resolve(base: Path, value: str, field: str) -> Path:
    """Paths in a recipe are relative to the recipe file, else to the working directory;
    `corpus:NAME` is a corpus that installs with the project (synthfactory.inputs.corpus)."""
    if value.startswith("corpus:"):
        from synthfactory.inputs.corpus import corpus_file

        return corpus_file(value.removeprefix("corpus:"), field)
    candidate = Path(value).expanduser()
    for option in ([candidate] if candidate.is_absolute() else [base / candidate, Path.cwd() / candidate]):
        if option.exists():
            return option.resolve()
    raise RecipeError(f"{field}: no such file or folder: {value}")


def file_fingerprint(path: Path) -> str:
    """Content hash of a file or of every file under a folder, so edited inputs change the hash."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def recipe_identity(recipe: Recipe) -> dict[str, Any]:
    """The recipe as its hash sees it: everything that decides what a batch holds. How MUCH to run
    (`batches.target_rows`, `budget`) is left out, so a run resumed with another target or budget
    keeps its batch ids and finds its finished batches. A recipe without `verification` (or without
    `grading`) hashes as it did before those sections could be left out or added. Where the store's
    credentials come from (`storage_options`) is not what a batch holds: a rerun on another machine,
    with other variable names, finds the same batches."""
    batches: set[str] = {"target_rows"} | ({"max_candidates"} if recipe.batches.max_candidates is None else set())
    absent = {k: True for k in ("verification", "grading") if not getattr(recipe, k)}
    return recipe.model_dump(mode="json", exclude={"budget": True, "batches": batches, "storage_options": True,
                                                   **absent})


def load_recipe(path: str | Path, *, batches: int | None = None, batch_size: int | None = None,
                target_rows: int | None = None) -> LoadedRecipe:
    """Read, validate and hash a recipe; every user mistake becomes one RecipeError line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise RecipeError(f"{path}: not valid YAML: {first_line}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping with name, seeds, generation, grading, validation")
    overrides = {k: v for k, v in (("count", batches), ("size", batch_size), ("target_rows", target_rows))
                 if v is not None}
    if overrides:
        raw = {**raw, "batches": {**(raw.get("batches") or {}), **overrides}}
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"{path}: {_format_validation_error(exc)}") from None
    try:
        recipe = settle_options(recipe)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    if recipe.grading is not None and recipe.grading.scale_max <= recipe.grading.scale_min:
        raise RecipeError(f"{path}: grading.scale_max: must be greater than grading.scale_min")
    if recipe.quality.dedup.num_perm % recipe.quality.dedup.bands:
        raise RecipeError(f"{path}: quality.dedup.bands: must divide quality.dedup.num_perm")
    try:  # the whole line's declared columns: one name, one type (a method's columns, one owner)
        recipe_schema(recipe)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None
    base = path.resolve().parent
    seeds_path = _resolve(base, recipe.seeds.path, "seeds.path") if recipe.seeds.path else None
    suite_path = _resolve(base, recipe.validation.suite, "validation.suite")
    files: dict[str, Path] = {}
    for i, bench in enumerate(recipe.quality.decontamination.benchmarks):
        files[f"benchmark:{bench.name}"] = _resolve(base, bench.path, f"quality.decontamination.benchmarks.{i}.path")
    if recipe.quality.reference:
        files["reference"] = _resolve(base, recipe.quality.reference, "quality.reference")
    if recipe.seeds.real:
        files["real"] = _resolve(base, recipe.seeds.real.path, "seeds.real.path")
    for i, judge in enumerate((recipe.grading.judges or []) if recipe.grading is not None else []):
        if judge.labels is not None:  # a learned judge's labels: checked now, hashed, found again at grading
            labels = _resolve(base, judge.labels, f"grading.judges.{i}.labels")
            judge._labels_path = labels
            if labels.is_dir() and not (labels / "_labels" / "_delta_log").is_dir():
                raise RecipeError(f"{path}: grading.judges.{i}.labels: {judge.labels} has no labels table (_labels/): "
                                  f"label rows first with `synthfactory label {labels}`, or give a JSONL/Parquet file")
            files[f"labels:{judge.name}"] = labels / "_labels" if labels.is_dir() else labels
            if "generator" in (judge.features or []):
                if recipe.generation.engine != "llamacpp":
                    raise RecipeError(f"{path}: grading.judges.{i}.features: generator needs a llamacpp generator "
                                      f"(this recipe's is {recipe.generation.engine})")
                judge._generator = (recipe.generation.model, recipe.generation.system_prompt)
    digest = hashlib.sha256()
    digest.update(json.dumps(recipe_identity(recipe), sort_keys=True).encode())
    for named in [seeds_path, suite_path, *files.values()]:
        if named is not None:
            digest.update(file_fingerprint(named).encode())
    for spec in (recipe.seeds.from_version, recipe.seeds.from_versions):
        if spec:
            digest.update(spec.encode())
    return LoadedRecipe(
        recipe=recipe, path=path.resolve(), seeds_path=seeds_path, suite_path=suite_path,
        recipe_hash=digest.hexdigest()[:16], files=files,
    )
