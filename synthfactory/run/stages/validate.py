"""Validate: the recipe's GX suite gates the batch; a failing batch is quarantined whole."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from synthfactory.model.batch import BatchState, with_reason
from synthfactory.run.stages.base import BatchWork, Stage

if TYPE_CHECKING:
    pass


def settle_validation(state: BatchState, outcome: dict[str, Any] | None) -> BatchState:
    """A passing batch keeps its rows; a failing one is quarantined whole, with its GX result. A batch
    that kept no row is validated too (an empty table): "empty" when its suite accepts that, else
    "quarantined" with the result (its rows were quarantined or rejected already: none left to move)."""
    if outcome is None or (outcome["success"] and not state.rows):
        return replace(state, stage="validated", status="empty", validation=outcome)
    if outcome["success"]:
        return replace(state, stage="validated", status="passed", validation=outcome)
    failed = ", ".join(outcome["failed_expectations"]) or "suite failed"
    moved = [with_reason(r, "validate", f"validation_failed: {failed}") for r in state.rows]
    return replace(state, stage="validated", status="quarantined", validation=outcome, rows=[],
                   quarantined=state.quarantined + moved)


class ValidateStage(Stage):
    name = "validate"

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        return settle_validation(state, work.gate.validate(state.rows, state.batch_id))
