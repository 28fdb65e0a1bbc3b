"""Errors a user can cause: each is one readable line naming what to fix (the CLI exits 2)."""


class UserError(Exception):
    """A mistake in what the user gave us (recipe, paths, options); not a bug of ours."""


class RecipeError(UserError):
    """The recipe, or a file it names, is invalid; the message names the field path."""


class EngineUnavailableError(UserError):
    """The recipe asks for an engine or model this machine cannot provide."""
