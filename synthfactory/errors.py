"""Errors a user can cause: each is one readable line naming what to fix (the CLI exits 2)."""


class SynthfactoryError(Exception):
    """Base of the errors we raise on purpose; anything else is a bug and keeps its traceback."""


class ValidationGateError(SynthfactoryError):
    """`validation.on_failure: fail` and a batch failed its suite: the run stops unpublished."""


class UserError(SynthfactoryError):
    """A mistake in what the user gave us (recipe, paths, options); not a bug of ours."""


class RecipeError(UserError):
    """The recipe, or a file it names, is invalid; the message names the field path."""


class EngineUnavailableError(UserError):
    """The recipe asks for an engine or model this machine cannot provide."""
