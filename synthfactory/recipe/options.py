"""Options checked against the implementation a recipe names: a method's `method_options`, an
engine's `options` (the generator's, grading's, each judge's), the screens' `quality.filters` and
each verifier's `verification[i].options`.

The schema only checks names (against synthfactory.registry); each implementation declares its
own strict options model, and this module, run when a recipe is loaded, validates the recipe's
options with it. The registry imports the one module a name needs, so the schema never imports an
implementation and no import circle forms. The recipe comes back with every options dict in its
validated, complete form (defaults filled in), which is what its hash sees.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from synthfactory.errors import RecipeError
from synthfactory.recipe.schema import LLM_JUDGES, GenerationConfig, JudgeConfig, Recipe, VerifierConfig, _message
from synthfactory.registry import ENGINES, METHODS, SCREENS, VERIFIERS


def checked(model: type[BaseModel], values: dict[str, Any], where: str, owner: str) -> BaseModel:
    """`values` validated by `model`; a RecipeError naming the field path (`where.key`) otherwise."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            path = where + "".join(f".{p}" for p in err["loc"])
            if err["type"] == "extra_forbidden":
                parts.append(f"{path}: {owner} takes no such option (its options: "
                             f"{', '.join(model.model_fields) or 'none'})")
            else:
                parts.append(f"{path}: {_message(err)}")
        raise RecipeError("; ".join(parts)) from None


def engine_options(engine: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    """An engine's options, validated by its back end's `Options` model, as a complete dict."""
    model = ENGINES.load(engine).Options
    return checked(model, values, where, f"the {engine} engine").model_dump(mode="json")


def judge_engine(judge: JudgeConfig, generation: GenerationConfig) -> tuple[str, str, dict[str, Any]]:
    """(engine, model, options) an LLM judge of `grading.panel` runs on: its own, else the
    generator's; the generator's options carry over only to a judge on the same engine."""
    engine = judge.engine or generation.engine
    if judge.options is not None:
        options = judge.options
    else:
        options = generation.options if engine == generation.engine else {}
    return engine, judge.model or generation.model, options


def screen_options(filters: dict[str, Any]) -> dict[str, Any]:
    """`quality.filters` split among the registered screens (each validates the keys its
    `Options` model declares), as one complete dict; a key no screen takes is an error."""
    settled: dict[str, Any] = {}
    owned: set[str] = set()
    for name in SCREENS:
        model = SCREENS.load(name).Options
        keys = set(model.model_fields)
        owned |= keys
        mine = {k: v for k, v in filters.items() if k in keys}
        settled.update(checked(model, mine, "quality.filters", f"the {name} screen").model_dump(mode="json"))
    unknown = sorted(set(filters) - owned)
    if unknown:
        raise RecipeError(f"quality.filters.{unknown[0]}: no screen takes this option "
                          f"(screens' options: {', '.join(sorted(owned))})")
    return settled


def verifier_options(recipe: Recipe) -> list[VerifierConfig]:
    """Each verifier's options, validated by its `Options` model and complete; a bad one is one
    line naming `verification[i].options.key`."""
    return [v.model_copy(update={"options": checked(
        VERIFIERS.load(v.method).Options, v.options, f"verification[{i}].options",
        f"the {v.method} verifier").model_dump(mode="json")}) for i, v in enumerate(recipe.verification)]


def settle_options(recipe: Recipe) -> Recipe:
    """The recipe with every options dict checked by the implementation it is for, and complete."""
    gen, grading = recipe.generation, recipe.grading
    checked(METHODS.load(gen.method).Options, gen.method_options, "generation.method_options",
            f"the {gen.method} method")
    gen = gen.model_copy(update={"options": engine_options(gen.engine, gen.options, "generation.options")})
    quality = recipe.quality.model_copy(update={"filters": screen_options(recipe.quality.filters)})
    settled = {"generation": gen, "quality": quality, "verification": verifier_options(recipe)}
    if grading is None:  # a verified recipe without judges
        return recipe.model_copy(update=settled)
    update: dict[str, Any] = {}
    if grading.options is not None:
        update["options"] = engine_options(grading.engine or gen.engine, grading.options, "grading.options")
    if grading.judges is not None:
        update["judges"] = [
            j if j.options is None else j.model_copy(update={"options": engine_options(
                j.engine or grading.engine or gen.engine, j.options, f"grading.judges.{i}.options")})
            for i, j in enumerate(grading.judges)]
    grading = grading.model_copy(update=update)
    for i, judge in enumerate(grading.panel):  # what each LLM judge inherits must suit its engine too
        if judge.method in LLM_JUDGES:
            engine, _, options = judge_engine(judge, gen)
            engine_options(engine, options, "grading.options" if grading.judges is None else
                           f"grading.judges.{i}.options")
    return recipe.model_copy(update={**settled, "grading": grading})
