"""How much a run does: which planned batch starts next, when to stop starting them, and why.

The plan (`synthfactory.run.plan`) fixes every batch a run could run, with deterministic ids; the
flow asks `RunControl.next_batch` before starting each one and tells it every batch that
finishes. It stops starting batches when

- `target`: the accepted rows so far, plus what the batches in flight are expected to add at the
  acceptance rate seen so far, reach `batches.target_rows` (more start if they fall short);
- `budget`: starting the batch would cross a `budget` limit, projected from the spend per
  candidate row of the batches finished so far (wall time: from the mean batch duration);
- the plan runs out: `complete` (no target), `max_candidates` or `seeds_exhausted` (target
  not reached).

Batches in flight always finish. The bound on a budget: a run spends at most the limit plus what
the batches in flight when it stopped spent beyond their projection, so at most the limit plus
the batches in flight: at most `2 x replicas + 2` batches, and only one per replica until the
first batch has finished (before that there is no spend per row to project from).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from synthfactory.model.batch import BatchState
from synthfactory.model.cost import Prices, Spend
from synthfactory.model.metadata import Budget, StopRecord

COMPLETE, TARGET, BUDGET, MAX_CANDIDATES, SEEDS_EXHAUSTED = (
    "complete", "target", "budget", "max_candidates", "seeds_exhausted")


def wilson_midpoint(accepted: int, candidates: int, z: float = 1.96) -> float:
    """The centre of the Wilson interval: a point estimate that stays off 0 and 1 on few rows."""
    return (accepted + z * z / 2) / (candidates + z * z) if candidates > 0 else 0.5


def wilson_interval(accepted: int, candidates: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of the acceptance rate from `accepted` of `candidates` (Wilson score)."""
    if candidates <= 0:
        return 0.0, 1.0
    p = accepted / candidates
    centre = (p + z * z / (2 * candidates)) / (1 + z * z / candidates)
    half = z * math.sqrt(p * (1 - p) / candidates + z * z / (4 * candidates * candidates)) / (1 + z * z / candidates)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class RunControl:
    """Admission of planned batches, in plan order. `sizes` are the candidates of each batch."""

    sizes: list[int]
    target: int | None = None
    limits: dict[str, float] = field(default_factory=dict)  # BudgetConfig.limits()
    prices: Prices = Prices()
    replicas: int = 1
    capped: bool = False  # the plan was cut by batches.max_candidates
    clock: Callable[[], float] = time.monotonic
    started_at: float | None = None

    next_index: int = 0
    in_flight: dict[int, float] = field(default_factory=dict)  # batch index -> when it started
    accepted: int = 0
    candidates_done: int = 0
    spent: Spend = Spend()
    durations: list[float] = field(default_factory=list)
    stopped_by: str | None = None  # the budget limit that stopped the run
    in_flight_at_stop: int = 0

    def __post_init__(self) -> None:
        if self.started_at is None:
            self.started_at = self.clock()

    # -- decisions ---------------------------------------------------------------------------
    def next_batch(self) -> int | None:
        """The index of the next batch to start now, or None (for now: ask again when one finishes)."""
        if self.stopped_by is not None or self.next_index >= len(self.sizes):
            return None
        if self.target is not None and self.expected_accepted() >= self.target:
            return None
        if self.limits:
            if not self.durations and len(self.in_flight) >= self.replicas:
                return None  # nothing measured yet: one batch per replica until one finishes
            crossed = self.limit_crossed(self.sizes[self.next_index])
            if crossed is not None:
                self.stopped_by, self.in_flight_at_stop = crossed, len(self.in_flight)
                return None
        index = self.next_index
        self.next_index += 1
        self.in_flight[index] = self.clock()
        return index

    def finished(self, index: int, accepted: int, spend: Spend) -> None:
        """Batch `index` finished; `accepted` is the run's accepted rows so far (all batches)."""
        started = self.in_flight.pop(index, self.clock())
        self.durations.append(self.clock() - started)
        self.candidates_done += self.sizes[index]
        self.accepted = accepted
        self.spent = self.spent + spend

    def expected_accepted(self) -> float:
        """Accepted so far plus what the batches in flight should add at the rate seen so far."""
        rate = wilson_midpoint(self.accepted, self.candidates_done)
        return self.accepted + rate * sum(self.sizes[i] for i in self.in_flight)

    def limit_crossed(self, candidates: int) -> str | None:
        """The first budget limit that starting a batch of `candidates` rows would cross."""
        if self.candidates_done:
            per = 1.0 / self.candidates_done
            ahead = candidates + sum(self.sizes[i] for i in self.in_flight)
            tokens = self.spent.tokens + self.spent.tokens * per * ahead
            seconds = self.spent.engine_seconds + self.spent.engine_seconds * per * ahead
        else:
            tokens, seconds = float(self.spent.tokens), self.spent.engine_seconds
        projected: dict[str, float | None] = {
            "max_tokens": tokens, "max_engine_seconds": seconds, "max_cost": self.prices.money(tokens, seconds),
            "max_wall_seconds": self.elapsed() + (sum(self.durations) / len(self.durations) if self.durations else 0.0),
        }
        for name, limit in self.limits.items():
            value = projected[name]
            if value is not None and value > limit:
                return name
        return None

    def elapsed(self) -> float:
        return self.clock() - (self.started_at or 0.0)

    # -- outcome -----------------------------------------------------------------------------
    @property
    def stopped(self) -> str:
        """Why the run stopped starting batches (once none is in flight)."""
        if self.stopped_by is not None:
            return BUDGET
        if self.target is not None:
            if self.accepted >= self.target:
                return TARGET
            return MAX_CANDIDATES if self.capped else SEEDS_EXHAUSTED
        return MAX_CANDIDATES if self.capped else COMPLETE

    def fraction(self, batches_done: int) -> float:
        """Progress in [0, 1]: accepted of target with a target, else batches done of planned."""
        if self.target is not None:
            return min(1.0, self.accepted / self.target)
        return batches_done / len(self.sizes) if self.sizes else 1.0

    def outcome(self) -> StopRecord:
        """What the commit metadata, summary, report and card record about the stop."""
        budget = Budget(limits=dict(self.limits), stopped_by=self.stopped_by,
                        batches_in_flight_at_stop=self.in_flight_at_stop if self.stopped_by else None,
                        wall_seconds=round(self.elapsed(), 3)) if self.limits else None
        return StopRecord(stopped=self.stopped, target_rows=self.target, batches_planned=len(self.sizes), budget=budget)


def trim_to_target(states: list[BatchState], target: int | None) -> list[BatchState]:
    """Exactly `target` accepted synthetic rows: the first in batch order stay, the rest (from the
    batches that were in flight when the target was reached) move to the quarantine as
    `over_target`, kept, never lost. A batch keeps real rows in proportion to what it keeps."""
    if target is None:
        return states
    room = target
    out = []
    for state in sorted(states, key=lambda s: s.batch_index):
        synthetic = [r for r in state.rows if r["source"] != "real"]
        if state.status != "passed" or len(synthetic) <= room:
            room -= len(synthetic) if state.status == "passed" else 0
            out.append(state)
            continue
        keep_ids = {r["id"] for r in synthetic[:room]}
        real = [r for r in state.rows if r["source"] == "real"]
        real_kept = {r["id"] for r in real[:math.ceil(len(real) * room / len(synthetic))]}
        moved = [{**r, "stage": "publish", "reason": f"over_target: the run had its {target} rows"}
                 for r in synthetic if r["id"] not in keep_ids]
        rows = [r for r in state.rows if r["id"] in keep_ids or r["id"] in real_kept]
        out.append(replace(state, rows=rows, quarantined=state.quarantined + moved))
        room = 0
    return out
