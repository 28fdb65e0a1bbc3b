"""The work on one batch: generate, screen, verify, grade, filter, measure, settle validation.

Pure functions over a `BatchState`; engines come in as a chat callable, the recipe's generation
method decides how rows are made and what the judge grades. Every row leaves a batch in exactly
one list: accepted, rejected (with a reason) or quarantined (with a reason), so counts reconcile.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from synthfactory.model.batch import BatchState, synthetic_count, with_reason
from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec
from synthfactory.grading import JudgementError, Panel, krippendorff_alpha
from synthfactory.grading.llm import p_first, pairwise_request
from synthfactory.model.lineage import sampling_seed
from synthfactory.methods import Method, method_for
from synthfactory.methods.base import Fail, run_rounds
from synthfactory.model.plan import BatchPlan, RunPlan
from synthfactory.recipe import Recipe
from synthfactory.model.rows import generated_row
from synthfactory.registry import JUDGES
from synthfactory.model.rows import verify_rate_column
from synthfactory.verify.base import Claim, Verdict

if TYPE_CHECKING:
    from synthfactory.quality.guards import QualityGuards
    from synthfactory.verify.base import Verifier

ChatFn = Callable[[EngineSpec, list[ChatRequest]], list[ChatResult]]
__all__ = ["BatchState", "generate_batch", "screen_batch", "verify_batch", "grade_batch", "filter_batch",
           "measure_batch", "settle_validation", "synthetic_count"]


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


def verify_batch(state: BatchState, method: Method, verifiers: list[tuple[str, "Verifier"]]) -> BatchState:
    """Every verifier, in recipe order, over the claims of the batch's rows (one call per verifier,
    so a verifier runs them in parallel); a claim a verifier fails is checked no further. The
    method settles each row from its verdicts: a failure quarantines it as
    `verify_failed: <name>: <reason>` before any judge sees it; a seed lacking a field the
    verifier needs quarantines its rows as `<name>: missing_seed_field: <field>`. Every row that
    went through keeps its verdicts as `verification`; `verified` counts [checked, passed] claims
    per verifier (the batch's pass rates)."""
    if not verifiers:
        return replace(state, stage="verified")
    current = list(state.rows)  # never mutate the input: it may be a cached result
    claims = [method.verify_claims(row) for row in current]
    checks: list[list[dict[str, Verdict]]] = [[{} for _ in row_claims] for row_claims in claims]
    lacking: dict[int, str] = {}
    counts: dict[str, list[int]] = {}
    for name, verifier in verifiers:
        for i, row_claims in enumerate(claims):
            missing = verifier.missing(row_claims[0].seed) if row_claims and i not in lacking else []
            if missing:
                lacking[i] = f"{name}: missing_seed_field: {', '.join(missing)}"
        todo = [(i, k) for i, row_claims in enumerate(claims) if i not in lacking
                for k in range(len(row_claims)) if all(v.passed for v in checks[i][k].values())]
        verdicts = _verdicts(verifier, [claims[i][k] for i, k in todo])
        for (i, k), verdict in zip(todo, verdicts, strict=True):  # a verifier returns one verdict per claim
            checks[i][k][name] = verdict
        counts[name] = [len(todo), sum(v.passed for v in verdicts)]
    rows, quarantined = [], list(state.quarantined)
    for i, row in enumerate(current):
        row = {**row, "verification": _verification_json(checks[i], lacking.get(i))}
        settled = lacking[i] if i in lacking else method.settle_verified(row, checks[i])
        if isinstance(settled, str):
            quarantined.append(with_reason(row, "verify", f"verify_failed: {settled}"))
        else:
            rows.append(settled)
    return replace(state, stage="verified", rows=rows, quarantined=quarantined, verified=counts)


def _verdicts(verifier: "Verifier", claims: list[Claim]) -> list[Verdict]:
    """The verifier's verdicts; one that raises on some claim (generated text is hostile input)
    fails that claim with the error as its reason instead of failing the batch."""
    if not claims:
        return []
    try:
        return list(verifier.verify_many(claims))
    except Exception:  # noqa: BLE001 - find the claim that breaks it, one at a time
        out = []
        for claim in claims:
            try:
                out.append(verifier.verify(claim))
            except Exception as exc:  # noqa: BLE001 - a reason on the row, not a crashed run
                out.append(Verdict(False, f"verifier_error: {type(exc).__name__}: {str(exc)[:200]}"))
        return out


def _verification_json(checks: list[dict[str, Verdict]], lacking: str | None) -> str:
    """The `verification` column: {name: {passed, reason, details}} for a row's one claim; for
    several (candidates), each verifier's verdict on each candidate under `details.candidates`."""
    if lacking is not None:
        name, _, reason = lacking.partition(": ")
        return json.dumps({name: Verdict(False, reason).as_json()}, sort_keys=True)
    if len(checks) == 1:
        return json.dumps({n: v.as_json() for n, v in checks[0].items()}, sort_keys=True, default=str)
    names = list(dict.fromkeys(n for verdicts in checks for n in verdicts))
    column = {}
    for name in names:
        mine = [verdicts.get(name) for verdicts in checks]
        failed = next((v for v in mine if v is not None and not v.passed), None)
        column[name] = {"passed": failed is None, "reason": failed.reason if failed else "ok",
                        "details": {"candidates": [v.as_json() if v is not None else None for v in mine]}}
    return json.dumps(column, sort_keys=True, default=str)


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


def filter_batch(state: BatchState, threshold: float | None) -> BatchState:
    """Keep rows whose judge score reaches the pass mark (`grading.pass_mark`: the threshold, or
    a majority of a panel's votes); reject the rest with the score. None: no judge, keep all."""
    if threshold is None:
        return replace(state, stage="filtered")
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
               "batch_judge_agreement": state.judge_agreement,
               **{verify_rate_column(name): round(passed / checked, 6) if checked else None
                  for name, (checked, passed) in (state.verified or {}).items()}}
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
