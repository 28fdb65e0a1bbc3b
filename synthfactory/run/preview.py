"""Preview: a handful of the plan's rows through every stage on the real engines, and an estimate
of the whole run from them. Reads the store (published versions, for dedup and seeds) and
writes nothing anywhere: no table, quarantine, index, staging, card or Data Docs.

The rows previewed are the plan's own work items (spread evenly over the plan, same prompts and
sampling seeds), so a row in the preview is the row the run would make for that seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from synthfactory.model.batch import BatchState, synthetic
from synthfactory.model.context import RunContext
from synthfactory.model.cost import Prices, batch_spend
from synthfactory.model.plan import BatchPlan, RunPlan
from synthfactory.quality.guards import QualityGuards
from synthfactory.quality.validation import SuiteGate
from synthfactory.recipe import LoadedRecipe
from synthfactory.run.control import wilson_interval, wilson_midpoint
from synthfactory.run.plan import plan_run, run_seeds
from synthfactory.run.stages import BatchWork, ChatFn, run_batch
from synthfactory.store import DatasetStore

TEXT_SHOWN = 300  # characters of each output the preview shows


def preview_items(plan: RunPlan, rows: int) -> BatchPlan:
    """`rows` work items spread evenly over the plan, as one batch (never written anywhere)."""
    items = [item for batch in plan.batches for item in batch.items]
    n = min(rows, len(items))
    picks = sorted({round(k * (len(items) - 1) / (n - 1)) for k in range(n)}) if n > 1 else [0]
    return BatchPlan(f"preview-{plan.run_id}", 0, tuple(replace(items[i], row_index=j) for j, i in enumerate(picks)))


def plan_for_preview(loaded: LoadedRecipe, store: DatasetStore, guards: QualityGuards) -> RunPlan:
    """The plan the next run would make (its seeds, its next version), read-only."""
    seeds = run_seeds(loaded, guards, store.uri)
    return plan_run(loaded, seeds, store.next_version(), contaminated=guards.contaminated_by)


def run_preview(loaded: LoadedRecipe, plan: RunPlan, batch: BatchPlan, guards: QualityGuards, chat: ChatFn
                ) -> BatchState:
    """Every stage of the line on the preview batch; the suite validates it without Data Docs."""
    gate = SuiteGate(loaded.suite_path, docs_dir=None)
    return run_batch(BatchWork(RunContext(loaded, plan), guards, gate, chat), batch)


def outcome_rows(batch: BatchPlan, state: BatchState) -> list[dict[str, Any]]:
    """One entry per previewed item, in plan order: seed, prompt, output, scores, what happened."""
    order = {item.sampling_seed: item.row_index for item in batch.items}

    def where(row: dict[str, Any]) -> int:
        return order.get(json.loads(row.get("sampling") or "{}").get("seed"), len(order))

    entries = []
    for status, rows in (("accepted", state.rows), ("rejected", state.rejected), ("quarantined", state.quarantined)):
        for row in rows:
            if row.get("source") == "real":
                continue
            text = row.get("text") or ""
            entries.append({
                "index": where(row), "seed": row.get("seed"), "prompt": row.get("prompt"),
                "output": text[:TEXT_SHOWN] + ("…" if len(text) > TEXT_SHOWN else ""),
                "score": row.get("score"), "scores": _scores(row.get("scores")), "outcome": status,
                "stage": row.get("stage") if status != "accepted" else None,
                "reason": row.get("reason") if status != "accepted" else None,
            })
    return sorted(entries, key=lambda e: e["index"])


def _scores(value: Any) -> Any:
    """A row keeps its scores as JSON text; the preview shows them as data."""
    return json.loads(value) if isinstance(value, str) else value


def estimate(plan: RunPlan, batch: BatchPlan, state: BatchState, prices: Prices, replicas: int,
             target_rows: int | None) -> dict[str, Any]:
    """The full run from the preview's numbers: candidates needed at the acceptance rate seen
    (the Wilson midpoint, with its 95% interval), tokens, engine-seconds, money (with prices), and
    wall time with `replicas` engine replicas busy in parallel (engine-seconds / replicas, model
    load not included).

    A row counts as accepted when it passed every row-level stage (screen, judge, filter): the
    suite's set-level expectations (diversity, near-dup rate) judge a batch of `batches.size`
    rows in the run, not the handful previewed, so its outcome is shown but does not count here."""
    n = len(batch.items)
    k = synthetic(state.rows) + synthetic([r for r in state.quarantined if r["stage"] == "validate"])
    spend = batch_spend(state)
    low, high = wilson_interval(k, n)
    observed = k / n if n else 0.0
    rate = wilson_midpoint(k, n)
    per_token, per_second = spend.tokens / n, spend.engine_seconds / n

    def ceil(value: float | None) -> int | None:
        return None if value is None else math.ceil(value)

    if target_rows is not None:
        candidates = ceil(target_rows / rate) if rate else None
        interval = [ceil(target_rows / high) if high else None, ceil(target_rows / low) if low else None]
        rows: dict[str, Any] = {"rows": target_rows}
    else:
        candidates = plan.candidates
        interval = [candidates, candidates]
        rows = {"rows": round(rate * candidates), "rows_interval": [math.floor(low * candidates),
                                                                     math.ceil(high * candidates)]}

    def cost(c: int | None) -> dict[str, Any]:
        if c is None:
            return {"tokens": None, "engine_seconds": None, "money": None, "wall_seconds": None}
        tokens, seconds = per_token * c, per_second * c
        return {"tokens": round(tokens), "engine_seconds": round(seconds, 1), "money": prices.money(tokens, seconds),
                "wall_seconds": round(seconds / max(1, replicas), 1)}

    return {
        "previewed": n, "accepted": k, "acceptance_observed": round(observed, 4), "acceptance_rate": round(rate, 4),
        "acceptance_interval": [round(low, 4), round(high, 4)],
        "target_rows": target_rows, **rows, "candidates": candidates, "candidates_interval": interval,
        "candidates_in_plan": plan.candidates, "replicas": replicas,
        "tokens_per_candidate": round(per_token, 1), "engine_seconds_per_candidate": round(per_second, 4),
        "engine_seconds_per_accepted_row": round(per_second / rate, 4) if rate else None,
        "currency": prices.currency if prices.priced else None,
        **cost(candidates), "at_interval": [cost(c) for c in interval],
        "short_of_target": bool(target_rows and candidates and candidates > plan.candidates),
    }
