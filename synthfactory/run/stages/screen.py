"""Screen: heuristics, decontamination and dedup before any judge or verifier spends time."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from synthfactory.model.batch import BatchState, with_reason
from synthfactory.run.stages.base import BatchWork, Stage

if TYPE_CHECKING:
    from synthfactory.quality.guards import QualityGuards


def screen_batch(state: BatchState, guards: QualityGuards) -> BatchState:
    """Heuristics, decontamination and dedup before the judge: no engine time on rows that can't ship."""
    kept, dropped = guards.screen(state.rows)
    return replace(state, stage="screened", rows=kept,
                   rejected=state.rejected + [with_reason(r, "screen", reason) for r, reason in dropped])


class ScreenStage(Stage):
    name = "screen"

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        return screen_batch(state, work.guards)
