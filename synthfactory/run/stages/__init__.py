"""The stage line every batch goes through, one module per stage, in the order of
`synthfactory.registry.STAGES`:

    generate -> screen -> verify -> grade -> filter -> measure -> validate

Each stage is a pure function over a `BatchState` (importable for tests and notebooks) and a
`Stage` that runs it with the run's `BatchWork`. Every row leaves a batch in exactly one list:
accepted, rejected (with a reason) or quarantined (with a reason), so counts reconcile.
"""

from __future__ import annotations

from synthfactory import registry
from synthfactory.model.batch import BatchState, synthetic_count
from synthfactory.run.stages.base import BatchWork, ChatFn, Stage
from synthfactory.run.stages.filter import filter_batch
from synthfactory.run.stages.generate import generate_batch
from synthfactory.run.stages.grade import grade_batch, with_judge_cost
from synthfactory.run.stages.measure import measure_batch
from synthfactory.run.stages.screen import screen_batch
from synthfactory.run.stages.validate import settle_validation
from synthfactory.run.stages.verify import verify_batch

__all__ = ["BatchState", "BatchWork", "ChatFn", "Stage", "stage_line", "run_batch", "generate_batch",
           "screen_batch", "verify_batch", "grade_batch", "with_judge_cost", "filter_batch", "measure_batch",
           "settle_validation", "synthetic_count"]


def stage_line() -> tuple[Stage, ...]:
    """The registered stages (`registry.STAGES`, read when called), in line order, one instance each."""
    stages = registry.STAGES
    line = tuple(stages.load(name)() for name in stages)
    for name, stage in zip(stages, line, strict=True):
        if not isinstance(stage, Stage) or stage.name != name:
            raise TypeError(f"stage {name!r}: {type(stage).__name__} is not a Stage named {name!r}")
    return line


def run_batch(work: BatchWork, batch: object) -> BatchState:
    """Every stage of the line, in order, for one batch, here (previews, tests, benchmarks)."""
    state = batch
    for stage in stage_line():
        state = stage.run(work, state)
    return state  # type: ignore[return-value]  # the last stage's: a BatchState (mypy keeps `batch`'s type)
