"""Grade: the recipe's judges score each row (or each candidate); the method settles it."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, cast

from synthfactory.grading import JudgementError, Panel, krippendorff_alpha
from synthfactory.grading.llm import JudgeScore, p_first, pairwise_request
from synthfactory.methods import Method, method_for
from synthfactory.model.batch import BatchState, with_reason
from synthfactory.model.lineage import sampling_seed
from synthfactory.model.plan import RunPlan
from synthfactory.recipe import Recipe
from synthfactory.registry import JUDGES
from synthfactory.run.stages.base import BatchWork, ChatFn, Stage


def grade_batch(plan: RunPlan, state: BatchState, recipe: Recipe, chat: ChatFn,
                method: Method | None = None, panel: Panel | None = None) -> BatchState:
    """Ask every judge of the panel about every item the method has it grade (one per row, or
    each candidate), one engine call per LLM judge and attempt; retry unreadable answers, then
    reject the row. The method settles each row from its scores (e.g. a preference pair whose
    margin is too small is rejected). A panel's agreement over the batch is kept for the suite.
    A verified recipe without `grading` has no judge: its rows pass with score null."""
    if recipe.grading is None:
        return replace(state, stage="graded")
    method = method or method_for(recipe)
    panel = panel or Panel(recipe.grading)
    current = list(state.rows)  # never mutate the input: it may be a cached result
    items = [method.judge_items(row) for row in current]
    where = [(i, j) for i, row_items in enumerate(items) for j in range(len(row_items))]
    seed = recipe.generation.sampling.seed
    judges = plan.judges or (plan.judge,)
    graded = panel.grade(
        [items[i][j] for i, j in where],
        [partial(chat, spec) if spec is not None else None for spec in judges],
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
        # no error on any of the row's items: each has its verdict
        settled = method.settle(row, cast(list[JudgeScore], [graded.verdicts[k] for k in mine]))
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
    # `judges` may be the plan's one judge (`plan.judge`) standing for a panel it does not list
    spec = next((s for c, s in zip(panel.configs, judges, strict=False) if JUDGES.fact(c.method, "logprobs")), None)
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


class GradeStage(Stage):
    name = "grade"
    calls_engines = True

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        return grade_batch(work.plan, state, work.recipe, work.chat, work.method, work.panel)
