"""Errors we raise on purpose. Each is one readable line with the cause and what to do next.

The CLI prints them as `synthfactory: error: ...` with no traceback: a `UserError` exits 2 (fix
the input), a `RunFailure` exits 1 (the run could not finish). Anything else is a bug of ours
and keeps its traceback behind `--debug`.
"""


class SynthfactoryError(Exception):
    """Base of the errors we raise on purpose; anything else is a bug and keeps its traceback."""

    exit_code = 1


class UserError(SynthfactoryError):
    """A mistake in what the user gave us (recipe, paths, options); not a bug of ours."""

    exit_code = 2


class RecipeError(UserError):
    """The recipe, or a file it names, is invalid; the message names the field path."""


class EngineUnavailableError(UserError):
    """The recipe asks for an engine or model this machine cannot provide."""


class RunFailure(SynthfactoryError):
    """The run started but could not finish; nothing was published (exit 1)."""


class ValidationGateError(RunFailure):
    """`validation.on_failure: fail` and a batch failed its suite: the run stops unpublished."""


class EngineFailure(RunFailure):
    """Infrastructure, not data: an engine crashed, failed its start check, or every endpoint is
    down. The run stops with the cause; rows it could not make are not counted as rejected."""


class NothingToPublishError(RunFailure):
    """Fewer rows passed than `publish.min_rows`: no version is published (the quarantine and
    the Prefect report still hold the run)."""
