"""The columns a recipe's whole line declares, gathered from the registries: its method, every
screen, its verifiers, its judges and every stage of the line (`synthfactory.model.columns`).

The loader checks them when a recipe is loaded (two declarations of one name with different
types, or a method column another part also declares, is a RecipeError naming both), and the
publish sequence derives the published schema from them. Implementations are reached through the
registries' `load` only, as `options` does: nothing here imports one.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from synthfactory import registry
from synthfactory.model.columns import Declared, published_schema
from synthfactory.recipe.schema import Recipe


def line_columns(recipe: Recipe, method: Any = None) -> list[Declared]:
    """Every part of the recipe's line with the columns it declares, in the published table's
    order after the base: screens, stages, the method, judges, verifiers. `method`: the run's
    instance (else one is built from the recipe, as `methods.method_for` does)."""
    if method is None:
        cls = registry.METHODS.load(recipe.generation.method)
        method = cls(cls.Options.model_validate(recipe.generation.method_options), recipe.generation)
    declared = [Declared(f"screen '{name}'", tuple(registry.SCREENS.load(name).columns)) for name in registry.SCREENS]
    declared += [Declared(f"stage '{name}'", tuple(registry.STAGES.load(name).columns)) for name in registry.STAGES]
    declared.append(Declared(f"method '{method.name}'", tuple(method.columns), tuple(method.internal), content=True))
    for judge in (recipe.grading.panel if recipe.grading is not None else []):
        cls = registry.JUDGES.load(judge.method)
        pairs = tuple(getattr(cls, "pair_columns", ())) if method.compares_pairs else ()
        declared.append(Declared(f"judge '{judge.name}' ({judge.method})", (*cls.columns, *pairs)))
    declared += [Declared(f"verifier '{v.name}' ({v.method})", tuple(registry.VERIFIERS.load(v.method).columns(v.name)))
                 for v in recipe.verification]
    return declared


def recipe_schema(recipe: Recipe, method: Any = None) -> pa.Schema:
    """The published table's schema for rows of `recipe`; a RecipeError if its line's declarations clash."""
    return published_schema(line_columns(recipe, method))
