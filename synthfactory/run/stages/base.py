"""What every stage of the line shares: the `Stage` shape, and `BatchWork`, the tools a run's
stages use, built once per run.

A stage is one module with one `Stage` subclass plus one line in `synthfactory.registry.STAGES`;
the registry's order is the stage line. A stage declares the columns it adds to rows itself
(`columns`); what the method, screens, verifiers and judges add they declare themselves. The driver,
both executors, the progress bar and the report read the line from there (`stage_line()`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from synthfactory.model.batch import BatchState
from synthfactory.model.chat import ChatRequest, ChatResult, EngineSpec
from synthfactory.model.context import RunContext

if TYPE_CHECKING:
    from synthfactory.grading import Panel
    from synthfactory.methods import Method
    from synthfactory.quality.guards import QualityGuards
    from synthfactory.quality.validation import SuiteGate
    from synthfactory.verify.base import Verifier

ChatFn = Callable[[EngineSpec, list[ChatRequest]], list[ChatResult]]


class Stage:
    """One step every batch goes through: `run(work, state)` returns the batch's next state and
    never mutates the one it was given (it may be a staged result). The first stage is given the
    batch's plan instead of a state."""

    name: ClassVar[str]
    calls_engines: ClassVar[bool] = False  # retried by the executor after errors worth retrying
    columns: ClassVar[tuple[pa.Field, ...]] = ()  # the columns this stage itself adds to rows (published)

    def run(self, work: BatchWork, state: Any) -> BatchState:
        raise NotImplementedError


@dataclass
class BatchWork:
    """What the stages of a run's batches need, built once per run: the run's context, its quality
    guards and suite gate, and the engines' chat function; the method, panel and verifiers are
    built on first use."""

    context: RunContext
    guards: QualityGuards
    gate: SuiteGate
    chat: ChatFn

    @property
    def plan(self) -> Any:
        return self.context.plan

    @property
    def recipe(self) -> Any:
        return self.context.recipe

    @functools.cached_property
    def method(self) -> Method:
        return self.guards.method  # the run's one instance (the screens read rows through it)

    @functools.cached_property
    def panel(self) -> Panel | None:
        """The recipe's judges (their embedder is the guards'); None: no grading."""
        from synthfactory.grading import Panel

        if self.recipe.grading is None:
            return None
        return Panel(self.recipe.grading, embedder=lambda: self.guards.embedder, dataset_uri=self.context.dataset_root)

    @functools.cached_property
    def verifiers(self) -> list[tuple[str, Verifier]]:
        """The recipe's verifiers, in its order."""
        from synthfactory.run.plan import build_verifiers

        return build_verifiers(self.recipe)
