"""Generation methods by name: `generation.method` in a recipe picks one.

Adding a method is one module here (a `Method` subclass) and one line in
`synthfactory.registry.METHODS`; see README "Add a ...". Modules are imported when a recipe names them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from synthfactory.methods.base import Method, MethodOptions
from synthfactory.registry import METHODS

if TYPE_CHECKING:
    from synthfactory.recipe import GenerationConfig, Recipe


def method_class(name: str) -> type[Method]:
    """The class registered under `name`; ValueError naming the known ones otherwise."""
    return METHODS.load(name)


def validate_options(name: str, options: dict[str, Any]) -> MethodOptions:
    """A method's options, validated by its own strict model (pydantic ValidationError if bad)."""
    return method_class(name).Options.model_validate(options)


def method_for(generation: GenerationConfig | Recipe) -> Method:
    """The method a recipe's generation section names, with its options."""
    config = cast("GenerationConfig", getattr(generation, "generation", generation))  # a Recipe's, or itself
    cls = method_class(config.method)
    return cls(cls.Options.model_validate(config.method_options), config)


__all__ = ["METHODS", "Method", "MethodOptions", "method_class", "method_for", "validate_options"]
