"""The recipe a user writes: its schema (`schema`) and how it is loaded and hashed (`load`)."""

from synthfactory.recipe.load import (  # noqa: F401 - re-exported
    LoadedRecipe,
    file_fingerprint,
    load_recipe,
    recipe_identity,
)
from synthfactory.recipe.schema import *  # noqa: F403 - the sections, for `from synthfactory.recipe import X`
from synthfactory.recipe.schema import LLM_JUDGES, template_environment  # noqa: F401 - re-exported
