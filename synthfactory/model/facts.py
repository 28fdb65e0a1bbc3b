"""What the run driver measured about a run, handed to publish to be committed with its version.

The batches say what was generated and kept (`RunTotals`, cost, gate outcomes); these are the
facts only the driver knows: where the version goes, which flow run made it, what the engines
did, why the run stopped, which suite gated it, the recipe. `run.results.commit_metadata` writes
each under the commit key it always had (`dataset_uri`, `engine_requests`, `stopped`, `suite`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthfactory.model.metadata import EngineStats, StopRecord


@dataclass(frozen=True)
class RunFacts:
    """The run's own facts, as `drive_run` records them when its last batch is done."""

    dataset_uri: str
    suite: str  # the GX suite's name
    engines: EngineStats  # `EnginePool.stats()`, busy seconds rounded, with when the engines were ready
    stop: StopRecord  # `RunControl.outcome()`: why the run stopped starting batches, the budget
    recipe: dict[str, Any]  # the recipe's own dump (its schema versions it), for the dataset card; no secrets
    batches_resumed: int = 0  # batches an earlier, interrupted run of the recipe finished
    first_batch_seconds: float | None = None  # run time when the first batch with accepted rows finished
    prefect_flow_run_id: str | None = None  # None: the core's local executor (no Prefect)
