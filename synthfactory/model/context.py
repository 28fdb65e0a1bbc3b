"""The run context: what every step of one run knows about it, fixed once the run is planned
(the recipe as loaded, the dataset it publishes to, the plan). Stages, publish and the report
take it from here, not from one another's objects."""

from __future__ import annotations

from dataclasses import dataclass

from synthfactory.model.plan import RunPlan
from synthfactory.recipe import LoadedRecipe, Recipe
from synthfactory.storage import Location


@dataclass(frozen=True)
class RunContext:
    """One run: its recipe, its plan, and where it publishes."""

    loaded: LoadedRecipe  # the recipe as loaded: files resolved, hash
    plan: RunPlan
    dataset_uri: str | None = None  # None: a preview, which publishes nothing
    # the dataset's folder with its credentials (a learned judge's model lives there)
    dataset_root: Location | None = None

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    @property
    def run_id(self) -> str:
        return self.plan.run_id
