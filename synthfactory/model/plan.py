"""A run's plan as data: every batch, its work items and ids, fixed before any engine starts
(made by `synthfactory.run.plan.plan_run`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from synthfactory.inputs.seeds import QuarantinedRow, SeedRow
from synthfactory.model.chat import EngineSpec


@dataclass(frozen=True)
class WorkItem:
    """One generation request of a batch, with everything lineage needs."""

    row_index: int
    seed: SeedRow
    sample_index: int
    prompt: str
    messages: tuple[dict[str, str], ...]
    sampling_seed: int


@dataclass(frozen=True)
class BatchPlan:
    batch_id: str
    batch_index: int
    items: tuple[WorkItem, ...]


@dataclass(frozen=True)
class RunPlan:
    """Everything a run will do, fixed before any engine starts."""

    dataset: str
    version: int
    run_id: str
    recipe_hash: str
    template_hash: str
    generator: EngineSpec
    judge: EngineSpec  # the (first LLM) judge's engine; the generator's if a panel has no LLM
    batches: tuple[BatchPlan, ...]
    seeds_quarantined: tuple[QuarantinedRow, ...] = field(default=())
    seeds_recycled: int = 0
    seed_versions: tuple[int, ...] = ()  # published versions the seeds came from (accumulation)
    judges: tuple[EngineSpec | None, ...] = ()  # per judge of the panel: its engine, None for non-LLM judges
    panel_label: str | None = None  # a panel's judges as rows name them in `judge_model`
    capped: bool = False  # batches.max_candidates cut the work short of every seed's samples
    judged: bool = True  # False: a verified recipe without grading (rows' judge_model is null)

    @property
    def candidates(self) -> int:
        """Rows the plan would generate if every batch ran."""
        return sum(len(b.items) for b in self.batches)

    @property
    def judge_model(self) -> str | None:
        """What a row's `judge_model` says: the judge's model, every judge of a panel, or None
        when no judge runs (a verified recipe without grading)."""
        if not self.judged:
            return None
        return self.panel_label or self.judge.model
