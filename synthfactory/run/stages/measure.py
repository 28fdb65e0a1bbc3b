"""Measure: real rows mixed in for the recipe's share, batch metrics as columns for the suite.

The columns it adds: the quality guards' batch metrics (`quality.guards.BATCH_METRICS`) and the
panel's agreement, declared here; each verifier's pass rate, declared by the verifier.
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from synthfactory.model.batch import BatchState, synthetic_count
from synthfactory.model.columns import UndeclaredColumnError, verify_rate_column
from synthfactory.model.plan import RunPlan
from synthfactory.quality.guards import BATCH_METRICS, QualityGuards
from synthfactory.run.stages.base import BatchWork, Stage

# Krippendorff's alpha of a judge panel over the batch (null: one judge, or no judge)
JUDGE_AGREEMENT = pa.field("batch_judge_agreement", pa.float64())


def measure_batch(plan: RunPlan, state: BatchState, guards: QualityGuards) -> BatchState:
    """Mix in real rows for the recipe's share, then add the batch metrics as columns for the suite."""
    rows = list(state.rows)
    count = guards.real_count(len(rows))
    if rows and count:
        start = ((plan.version - 1) * len(plan.batches) + state.batch_index) * count
        rows += guards.real_rows(rows[0], count, start=start)
    near_dups = sum(r["reason"].startswith(("exact_duplicate", "near_duplicate")) for r in state.rejected)
    computed = guards.batch_metrics(rows, synthetic_count(state), near_dups, plan.version)
    undeclared = sorted(set(computed) - {f.name for f in BATCH_METRICS})
    if undeclared:
        raise UndeclaredColumnError(f"QualityGuards.batch_metrics computes {', '.join(map(repr, undeclared))}, "
                                    "which quality.guards.BATCH_METRICS does not declare")
    metrics = {**computed, JUDGE_AGREEMENT.name: state.judge_agreement,
               **{verify_rate_column(name): round(passed / checked, 6) if checked else None
                  for name, (checked, passed) in (state.verified or {}).items()}}
    return replace(state, stage="measured", rows=[{**r, **metrics} for r in rows])


class MeasureStage(Stage):
    name = "measure"
    columns = (*BATCH_METRICS, JUDGE_AGREEMENT)

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        return measure_batch(work.plan, state, work.guards)
