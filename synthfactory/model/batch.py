"""A batch between stages: the rows still in play and every row that left, with its reason.

Every row leaves a batch in exactly one list: accepted (`rows`), rejected or quarantined, so
counts always reconcile: generated = accepted + rejected + quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BatchState:
    """A batch between stages. `rows` are the ones still in play."""

    batch_id: str
    batch_index: int
    stage: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    status: str = "pending"  # pending | passed | quarantined | empty
    engine_requests: int = 0
    engine_seconds: float = 0.0
    judge_agreement: float | None = None  # Krippendorff's alpha of a panel's judges over this batch
    # the verify stage: per verifier, in recipe order, [checked, passed] (claims: a row's response,
    # or each candidate of a preference row); None before the stage or without verification
    verified: dict[str, list[int]] | None = None


def with_reason(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    """A row leaving the batch: the stage that sent it away and why."""
    return {**row, "stage": stage, "reason": reason}


def synthetic(rows: list[dict[str, Any]]) -> int:
    """How many of `rows` were generated (real rows mixed in are not)."""
    return sum(r["source"] != "real" for r in rows)


def synthetic_count(state: BatchState) -> int:
    """Rows this batch generated, whichever list they ended in."""
    return synthetic(state.rows) + synthetic(state.rejected) + synthetic(state.quarantined)
