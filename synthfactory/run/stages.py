"""The work on one batch: generate, screen, grade, filter, measure, settle validation.

Pure functions over a `BatchState`; engines come in as a chat callable, the recipe's generation
method decides how rows are made and what the judge grades. Every row leaves a batch in exactly
one list: accepted, rejected (with a reason) or quarantined (with a reason), so counts reconcile.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from synthfactory.run.batch import BatchState, synthetic_count, with_reason
from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec
from synthfactory.grading import JudgementError, Panel, krippendorff_alpha
from synthfactory.grading.llm import p_first, pairwise_request
from synthfactory.lineage import sampling_seed
from synthfactory.methods import Method, method_for
from synthfactory.methods.base import Fail, run_rounds
from synthfactory.run.plan import BatchPlan, RunPlan
from synthfactory.recipe import Recipe
from synthfactory.rows import generated_row
from synthfactory.registry import JUDGES

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
                method: Method | None = None, panel: Panel | None = None) -> BatchState:
    """Ask every judge of the panel about every item the method has it grade (one per row, or
    each candidate), one engine call per LLM judge and attempt; retry unreadable answers, then
    reject the row. The method settles each row from its scores (e.g. a preference pair whose
    margin is too small is rejected). A panel's agreement over the batch is kept for the suite."""
    method = method or method_for(recipe)
    panel = panel or Panel(recipe.grading)
    current = list(state.rows)  # never mutate the input: it may be a cached result
    items = [method.judge_items(row) for row in current]
    where = [(i, j) for i, row_items in enumerate(items) for j in range(len(row_items))]
    seed = recipe.generation.sampling.seed
    judges = plan.judges or (plan.judge,)
    graded = panel.grade(
        [items[i][j] for i, j in where],
        [(lambda requests, spec=spec: chat(spec, requests)) if spec is not None else None for spec in judges],
        lambda k, attempt: sampling_seed(seed, plan.version, state.batch_index, where[k][0], attempt,
                                         part=where[k][1]))
    of_row: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(where):
        of_row.setdefault(i, []).append(k)
    rows, rejected = [], list(state.rejected)
    for i, row in enumerate(current):
        mine = of_row.get(i, [])
        row = with_judge_cost(row, sum(graded.prompt_tokens[k] for k in mine),
                              sum(graded.completion_tokens[k] for k in mine), sum(graded.latency_s[k] for k in mine))
        failed = next((graded.errors[k] for k in mine if graded.errors[k] is not None), None)
        if failed is not None:
            rejected.append(with_reason(row, "grade", f"judge_unparseable: {failed}"))
            continue
        settled = method.settle(row, [graded.verdicts[k] for k in mine])
        if isinstance(settled, str):
            rejected.append(with_reason(row, "grade", settled))
        else:
            rows.append(settled)
    agreement = krippendorff_alpha(list(graded.by_judge.values())) if len(graded.by_judge) > 1 else None
    rows, requests, seconds = _order_check(rows, method, panel, judges, chat)
    return replace(state, stage="graded", rows=rows, rejected=rejected,
                   engine_requests=state.engine_requests + graded.requests + requests,
                   engine_seconds=state.engine_seconds + graded.seconds + seconds,
                   judge_agreement=round(agreement, 6) if agreement is not None else None)


def with_judge_cost(row: dict[str, Any], prompt_tokens: int, completion_tokens: int,
                    latency_s: float) -> dict[str, Any]:
    """The row with more judge tokens and seconds added to what it already cost."""
    return {**row, "judge_prompt_tokens": row["judge_prompt_tokens"] + prompt_tokens,
            "judge_completion_tokens": row["judge_completion_tokens"] + completion_tokens,
            "judge_latency_s": row["judge_latency_s"] + latency_s}


def _order_check(rows: list[dict[str, Any]], method: Method, panel: Panel, judges: tuple, chat: ChatFn
                 ) -> tuple[list[dict[str, Any]], int, float]:
    """Position bias: the panel's first log-probability judge compares each row's pair with the
    preferred answer first, then second. A check, not a verdict: it never rejects a row, and an
    unreadable answer leaves the row's check empty."""
    spec = next((s for c, s in zip(panel.configs, judges) if JUDGES.fact(c.method, "logprobs")), None)
    wanted = [(i, pair) for i, row in enumerate(rows) for pair in method.pairs(row)[:1]]
    if spec is None or not wanted:
        return rows, 0, 0.0
    asked = [r for _, (instruction, good, other) in wanted
             for r in (pairwise_request(instruction, good, other), pairwise_request(instruction, other, good))]
    answers = chat(spec, asked)
    out = list(rows)
    for k, (i, _) in enumerate(wanted):
        forward, backward = answers[2 * k], answers[2 * k + 1]
        row = with_judge_cost(out[i], forward.prompt_tokens + backward.prompt_tokens,
                              forward.completion_tokens + backward.completion_tokens,
                              forward.latency_s + backward.latency_s)
        try:
            first_wins, second_wins = p_first(forward), p_first(backward)  # P(slot A) with the pair each way
            row.update(judge_first_slot_p=round((first_wins + second_wins) / 2, 6),
                       judge_order_consistent=(first_wins > 0.5) == (second_wins < 0.5))
        except JudgementError:
            pass
        out[i] = row
    return out, len(answers), sum(a.latency_s for a in answers)


def filter_batch(state: BatchState, threshold: float) -> BatchState:
    """Keep rows whose judge score reaches the pass mark (`grading.pass_mark`: the threshold, or
    a majority of a panel's votes); reject the rest with the score."""
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
    metrics = {**guards.batch_metrics(rows, synthetic_count(state), near_dups, plan.version),
               "batch_judge_agreement": state.judge_agreement}
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
