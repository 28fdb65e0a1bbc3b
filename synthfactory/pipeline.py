"""The work on one batch: generate, screen, grade, filter, measure, settle validation.

Pure functions over a `BatchState`; engines come in as a chat callable, the recipe's generation
method decides how rows are made and what the judge grades. Every row leaves a batch in exactly
one list: accepted, rejected (with a reason) or quarantined (with a reason), so counts reconcile.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from synthfactory.batch import BatchState, synthetic_count, with_reason
from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec
from synthfactory.grading import JudgementError, JudgeScore, make_judge
from synthfactory.lineage import sampling_seed
from synthfactory.methods import Method, method_for
from synthfactory.methods.base import Fail, run_rounds
from synthfactory.plan import BatchPlan, RunPlan
from synthfactory.recipe import Recipe
from synthfactory.rows import generated_row

if TYPE_CHECKING:
    from synthfactory.quality.guards import QualityGuards

ChatFn = Callable[[EngineSpec, list[ChatRequest]], list[ChatResult]]
__all__ = ["BatchState", "generate_batch", "screen_batch", "grade_batch", "filter_batch", "measure_batch",
           "settle_validation", "synthetic_count"]


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


def grade_batch(plan: RunPlan, state: BatchState, recipe: Recipe, chat: ChatFn,
                method: Method | None = None) -> BatchState:
    """Ask the judge about every item the method has it grade (one per row, or each candidate),
    all in one engine call per attempt; retry unreadable answers, then reject the row. The method
    settles each row from its scores (e.g. a preference pair whose margin is too small is rejected)."""
    method = method or method_for(recipe)
    judge = make_judge(recipe.grading)
    current = list(state.rows)  # never mutate the input: it may be a cached result
    items = [method.judge_items(row) for row in current]
    pending = [(i, j) for i, row_items in enumerate(items) for j in range(len(row_items))]
    verdicts: dict[tuple[int, int], JudgeScore] = {}
    errors: dict[int, str] = {}
    requests_made, seconds = 0, 0.0
    for attempt in range(recipe.grading.max_attempts):
        if not pending:
            break
        asked = [
            judge.requests(*items[i][j], 0 if attempt == 0 else sampling_seed(
                recipe.generation.sampling.seed, plan.version, state.batch_index, i, attempt, part=j))
            for i, j in pending
        ]
        results = chat(plan.judge, [r for requests in asked for r in requests])
        requests_made += len(results)
        seconds += sum(r.latency_s for r in results)
        still, offset = [], 0
        for (i, j), requests in zip(pending, asked):
            answers, offset = results[offset:offset + len(requests)], offset + len(requests)
            row = current[i]
            current[i] = {
                **row,
                "judge_prompt_tokens": row["judge_prompt_tokens"] + sum(a.prompt_tokens for a in answers),
                "judge_completion_tokens": row["judge_completion_tokens"] + sum(a.completion_tokens for a in answers),
                "judge_latency_s": row["judge_latency_s"] + sum(a.latency_s for a in answers),
            }
            try:
                errors_in = [a.error for a in answers if a.error]
                if errors_in:
                    raise JudgementError(errors_in[0])
                verdicts[(i, j)] = judge.parse(answers)
            except JudgementError as exc:
                errors[i] = str(exc)
                still.append((i, j))
        pending = still
    unreadable = {i for i, _ in pending}
    rows, rejected = [], list(state.rejected)
    for i, row in enumerate(current):
        if i in unreadable:
            rejected.append(with_reason(row, "grade", f"judge_unparseable: {errors[i]}"))
            continue
        settled = method.settle(row, [verdicts[(i, j)] for j in range(len(items[i]))])
        if isinstance(settled, str):
            rejected.append(with_reason(row, "grade", settled))
        else:
            rows.append(settled)
    return replace(state, stage="graded", rows=rows, rejected=rejected,
                   engine_requests=state.engine_requests + requests_made,
                   engine_seconds=state.engine_seconds + seconds)


def filter_batch(state: BatchState, threshold: float) -> BatchState:
    """Keep rows whose judge score reaches the recipe's threshold; reject the rest with the score."""
    keep = [r for r in state.rows if r["score"] >= threshold]
    below = [with_reason(r, "filter", f"below_threshold: {r['score']:.3f} < {threshold:.3f}")
             for r in state.rows if r["score"] < threshold]
    return replace(state, stage="filtered", rows=keep, rejected=state.rejected + below)


def screen_batch(state: BatchState, guards: "QualityGuards") -> BatchState:
    """Heuristics, decontamination and dedup before the judge: no engine time on rows that can't ship."""
    kept, dropped = guards.screen(state.rows)
    return replace(state, stage="screened", rows=kept,
                   rejected=state.rejected + [with_reason(r, "screen", reason) for r, reason in dropped])


def measure_batch(plan: RunPlan, state: BatchState, guards: "QualityGuards") -> BatchState:
    """Mix in real rows for the recipe's share, then add the batch metrics as columns for the suite."""
    rows = list(state.rows)
    count = guards.real_count(len(rows))
    if rows and count:
        rows += guards.real_rows(rows[0], count, start=((plan.version - 1) * len(plan.batches) + state.batch_index) * count)
    near_dups = sum(r["reason"].startswith(("exact_duplicate", "near_duplicate")) for r in state.rejected)
    metrics = guards.batch_metrics(rows, synthetic_count(state), near_dups, plan.version)
    return replace(state, stage="measured", rows=[{**r, **metrics} for r in rows])


def settle_validation(state: BatchState, outcome: dict[str, Any] | None) -> BatchState:
    """A passing batch keeps its rows; a failing one is quarantined whole, with its GX result."""
    if outcome is None:
        return replace(state, stage="validated", status="empty")
    if outcome["success"]:
        return replace(state, stage="validated", status="passed", validation=outcome)
    failed = ", ".join(outcome["failed_expectations"]) or "suite failed"
    moved = [with_reason(r, "validate", f"validation_failed: {failed}") for r in state.rows]
    return replace(state, stage="validated", status="quarantined", validation=outcome, rows=[],
                   quarantined=state.quarantined + moved)
