"""Generate: the recipe's method makes each batch's rows, one engine call per round."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from synthfactory.methods import Method, method_for
from synthfactory.methods.base import Fail, run_rounds
from synthfactory.model.batch import BatchState, with_reason
from synthfactory.model.plan import BatchPlan, RunPlan
from synthfactory.model.rows import generated_row
from synthfactory.recipe import Recipe
from synthfactory.run.stages.base import BatchWork, ChatFn, Stage

if TYPE_CHECKING:
    pass


def generate_batch(plan: RunPlan, batch: BatchPlan, recipe: Recipe, chat: ChatFn,
                   method: Method | None = None) -> BatchState:
    """The method's rounds for the whole batch (one engine call per round); each finished draft
    becomes a row with its lineage, each failed one a quarantined or rejected row with its reason."""
    method = method or method_for(recipe)
    drafts, sent = run_rounds(method, list(batch.items), lambda requests: chat(plan.generator, requests))
    sampling_json = json.dumps(recipe.generation.sampling.model_dump(mode="json"), sort_keys=True)
    rows, rejected, quarantined = [], [], []
    for draft in drafts:
        outcome = draft.outcome
        assert outcome is not None  # run_rounds returns finished drafts, each with its outcome
        row = generated_row(plan, batch, method, draft, outcome.fields, sampling_json)
        if not isinstance(outcome, Fail):
            rows.append(row)
        elif outcome.status == "rejected":
            rejected.append(with_reason(row, "generate", outcome.reason))
        else:
            quarantined.append(with_reason(row, "generate", outcome.reason))
    return BatchState(
        batch_id=batch.batch_id, batch_index=batch.batch_index, stage="generated", rows=rows,
        rejected=rejected, quarantined=quarantined, engine_requests=sent,
        engine_seconds=sum(d.latency_s for d in drafts),
    )


class GenerateStage(Stage):
    name = "generate"
    calls_engines = True

    def run(self, work: BatchWork, batch: BatchPlan) -> BatchState:
        return generate_batch(work.plan, batch, work.recipe, work.chat, work.method)
