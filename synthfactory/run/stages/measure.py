"""Measure: real rows mixed in for the recipe's share, batch metrics as columns for the suite."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from synthfactory.run.stages.base import BatchWork, Stage

from synthfactory.model.batch import BatchState, synthetic_count
from synthfactory.model.plan import RunPlan
from synthfactory.model.rows import verify_rate_column

if TYPE_CHECKING:
    from synthfactory.quality.guards import QualityGuards


def measure_batch(plan: RunPlan, state: BatchState, guards: "QualityGuards") -> BatchState:
    """Mix in real rows for the recipe's share, then add the batch metrics as columns for the suite."""
    rows = list(state.rows)
    count = guards.real_count(len(rows))
    if rows and count:
        rows += guards.real_rows(rows[0], count, start=((plan.version - 1) * len(plan.batches) + state.batch_index) * count)
    near_dups = sum(r["reason"].startswith(("exact_duplicate", "near_duplicate")) for r in state.rejected)
    metrics = {**guards.batch_metrics(rows, synthetic_count(state), near_dups, plan.version),
               "batch_judge_agreement": state.judge_agreement,
               **{verify_rate_column(name): round(passed / checked, 6) if checked else None
                  for name, (checked, passed) in (state.verified or {}).items()}}
    return replace(state, stage="measured", rows=[{**r, **metrics} for r in rows])


class MeasureStage(Stage):
    name = "measure"

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        return measure_batch(work.plan, state, work.guards)
