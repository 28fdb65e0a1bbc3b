"""The work on one batch: generate, grade, filter. Pure functions over rows; engines come in as callables.

Stages hand a `BatchState` along. Every row leaves a batch in exactly one list: accepted, rejected
(with a reason) or quarantined (with a reason), so counts always reconcile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec
from synthfactory.grading import JudgementError, make_judge
from synthfactory.lineage import row_id_for, sampling_seed
from synthfactory.plan import BatchPlan, RunPlan
from synthfactory.recipe import Recipe

if TYPE_CHECKING:
    from synthfactory.quality.guards import QualityGuards

ChatFn = Callable[[EngineSpec, list[ChatRequest]], list[ChatResult]]


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


def _with_reason(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    return {**row, "stage": stage, "reason": reason}


def generate_batch(plan: RunPlan, batch: BatchPlan, recipe: Recipe, chat: ChatFn) -> BatchState:
    """One engine call for the whole batch; each result becomes a row with its lineage."""
    sampling = recipe.generation.sampling
    requests = [
        ChatRequest(messages=item.messages, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                    top_p=sampling.top_p, seed=item.sampling_seed)
        for item in batch.items
    ]
    results = chat(plan.generator, requests)
    sampling_json = json.dumps(sampling.model_dump(mode="json"), sort_keys=True)
    rows, quarantined = [], []
    for item, result in zip(batch.items, results, strict=True):
        text = result.text.strip()
        row = {
            "id": row_id_for(item.prompt, text), "seed_id": item.seed.seed_id, "source": "synthetic",
            "generation_depth": item.seed.generation_depth + 1, "generator_model": plan.generator.model,
            "prompt_template_hash": plan.template_hash,
            "sampling": json.dumps({**json.loads(sampling_json), "seed": item.sampling_seed}, sort_keys=True),
            "judge_model": plan.judge.model, "scores": None, "score": None, "run_id": plan.run_id,
            "batch_id": batch.batch_id, "created_at": datetime.now(timezone.utc),
            "recipe_hash": plan.recipe_hash, "version": plan.version, "batch_index": batch.batch_index,
            "node_id": result.node_id,
            "seed": json.dumps(item.seed.fields, ensure_ascii=False, sort_keys=True, default=str),
            "prompt": item.prompt, "text": text, "finish_reason": result.finish_reason,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "latency_s": result.latency_s, "judge_prompt_tokens": 0, "judge_completion_tokens": 0,
            "judge_latency_s": 0.0, "text_chars": len(text),
        }
        if result.error:
            quarantined.append(_with_reason(row, "generate", result.error))
        elif not text:
            quarantined.append(_with_reason(row, "generate", "empty_generation"))
        else:
            rows.append(row)
    return BatchState(
        batch_id=batch.batch_id, batch_index=batch.batch_index, stage="generated", rows=rows,
        quarantined=quarantined, engine_requests=len(requests),
        engine_seconds=sum(r.latency_s for r in results),
    )


def grade_batch(plan: RunPlan, state: BatchState, recipe: Recipe, chat: ChatFn) -> BatchState:
    """Ask the judge about every row in one engine call; retry unreadable answers, then reject them."""
    judge = make_judge(recipe.grading)
    current = list(state.rows)  # never mutate the input: it may be a cached result
    pending = list(range(len(current)))
    graded: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    requests_made, seconds = 0, 0.0
    for attempt in range(recipe.grading.max_attempts):
        if not pending:
            break
        per_row = [
            judge.requests(current[i]["prompt"], current[i]["text"], 0 if attempt == 0 else sampling_seed(
                recipe.generation.sampling.seed, plan.version, state.batch_index, i, attempt))
            for i in pending
        ]
        results = chat(plan.judge, [r for requests in per_row for r in requests])
        requests_made += len(results)
        seconds += sum(r.latency_s for r in results)
        still, offset = [], 0
        for i, requests in zip(pending, per_row):
            answers, offset = results[offset:offset + len(requests)], offset + len(requests)
            row = current[i]
            current[i] = row = {
                **row,
                "judge_prompt_tokens": row["judge_prompt_tokens"] + sum(a.prompt_tokens for a in answers),
                "judge_completion_tokens": row["judge_completion_tokens"] + sum(a.completion_tokens for a in answers),
                "judge_latency_s": row["judge_latency_s"] + sum(a.latency_s for a in answers),
            }
            try:
                errors_in = [a.error for a in answers if a.error]
                if errors_in:
                    raise JudgementError(errors_in[0])
                verdict = judge.parse(answers)
            except JudgementError as exc:
                errors[i] = str(exc)
                still.append(i)
                continue
            graded[i] = {**row, "scores": json.dumps(verdict.raw, sort_keys=True), "score": verdict.score}
        pending = still
    rows = [graded[i] for i in sorted(graded)]
    rejected = state.rejected + [
        _with_reason(current[i], "grade", f"judge_unparseable: {errors[i]}") for i in pending
    ]
    return replace(state, stage="graded", rows=rows, rejected=rejected,
                   engine_requests=state.engine_requests + requests_made,
                   engine_seconds=state.engine_seconds + seconds)


def filter_batch(state: BatchState, threshold: float) -> BatchState:
    """Keep rows whose judge score reaches the recipe's threshold; reject the rest with the score."""
    keep = [r for r in state.rows if r["score"] >= threshold]
    below = [_with_reason(r, "filter", f"below_threshold: {r['score']:.3f} < {threshold:.3f}")
             for r in state.rows if r["score"] < threshold]
    return replace(state, stage="filtered", rows=keep, rejected=state.rejected + below)


def screen_batch(state: BatchState, guards: "QualityGuards") -> BatchState:
    """Heuristics, decontamination and dedup before the judge: no engine time on rows that can't ship."""
    kept, dropped = guards.screen(state.rows)
    return replace(state, stage="screened", rows=kept,
                   rejected=state.rejected + [_with_reason(r, "screen", reason) for r, reason in dropped])


def measure_batch(plan: RunPlan, state: BatchState, guards: "QualityGuards") -> BatchState:
    """Mix in real rows for the recipe's share, then add the batch metrics as columns for the suite."""
    rows = list(state.rows)
    count = guards.real_count(len(rows))
    if rows and count:
        rows += guards.real_rows(rows[0], count, start=((plan.version - 1) * len(plan.batches) + state.batch_index) * count)
    near_dups = sum(r["reason"].startswith(("exact_duplicate", "near_duplicate")) for r in state.rejected)
    metrics = guards.batch_metrics(rows, synthetic_count(state), near_dups, plan.version)
    return replace(state, stage="measured", rows=[{**r, **metrics} for r in rows])


def synthetic_count(state: BatchState) -> int:
    """Rows this batch generated (real rows mixed in are not generated, so not counted)."""
    return sum(r["source"] != "real" for rows in (state.rows, state.rejected, state.quarantined) for r in rows)


def settle_validation(state: BatchState, outcome: dict[str, Any] | None) -> BatchState:
    """A passing batch keeps its rows; a failing one is quarantined whole, with its GX result."""
    if outcome is None:
        return replace(state, stage="validated", status="empty")
    if outcome["success"]:
        return replace(state, stage="validated", status="passed", validation=outcome)
    failed = ", ".join(outcome["failed_expectations"]) or "suite failed"
    moved = [_with_reason(r, "validate", f"validation_failed: {failed}") for r in state.rows]
    return replace(state, stage="validated", status="quarantined", validation=outcome, rows=[],
                   quarantined=state.quarantined + moved)
