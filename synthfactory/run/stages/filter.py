"""Filter: rows below the judges' pass mark are rejected with their score."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from synthfactory.model.batch import BatchState, with_reason
from synthfactory.run.stages.base import BatchWork, Stage

if TYPE_CHECKING:
    pass


def filter_batch(state: BatchState, threshold: float | None) -> BatchState:
    """Keep rows whose judge score reaches the pass mark (`grading.pass_mark`: the threshold, or
    a majority of a panel's votes); reject the rest with the score. None: no judge, keep all."""
    if threshold is None:
        return replace(state, stage="filtered")
    keep = [r for r in state.rows if r["score"] >= threshold]
    below = [with_reason(r, "filter", f"below_threshold: {r['score']:.3f} < {threshold:.3f}")
             for r in state.rows if r["score"] < threshold]
    return replace(state, stage="filtered", rows=keep, rejected=state.rejected + below)


class FilterStage(Stage):
    name = "filter"

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        grading = work.recipe.grading
        return filter_batch(state, grading.pass_mark if grading is not None else None)
