"""Turning finished batches into what gets published, quarantined and reported."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from synthfactory.inputs.seeds import QuarantinedRow
from synthfactory.model.batch import BatchState, synthetic, synthetic_count
from synthfactory.model.columns import Declared, check_declared, internal_keys
from synthfactory.model.cost import Prices, run_cost
from synthfactory.model.facts import RunFacts
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.model.metadata import GateRecord, Judging, Quality, RunTotals, VerifierRecord, VersionMetadata
from synthfactory.model.plan import RunPlan


def _reason_code(reason: str) -> str:
    """`below_threshold: 0.2 < 0.5` -> `below_threshold`; contamination keeps its benchmark name."""
    return reason.split(" ", 1)[0] if reason.startswith("contaminated:") else reason.split(":", 1)[0]


def totals_for(plan: RunPlan, states: list[BatchState]) -> RunTotals:
    items = [item for batch in plan.batches for item in batch.items]
    totals = RunTotals(seeds_quarantined=len(plan.seeds_quarantined), batches=len(states),
                       seeds_recycled=plan.seeds_recycled, seed_versions=list(plan.seed_versions),
                       seed_real_share=round(sum(i.seed.source == "real" for i in items) / max(1, len(items)), 6))
    for state in states:
        totals.generated += synthetic_count(state)
        totals.accepted += synthetic(state.rows)
        totals.real_published += len(state.rows) - synthetic(state.rows)
        totals.rejected += synthetic(state.rejected)
        totals.quarantined += synthetic(state.quarantined)
        totals.batches_passed += state.status == "passed"
        totals.batches_quarantined += state.status == "quarantined"
        for row in [*state.rejected, *state.quarantined]:
            code = _reason_code(row["reason"])
            totals.reasons[code] = totals.reasons.get(code, 0) + 1
            if row.get("source") != "real" and row.get("stage"):
                totals.left_at[row["stage"]] = totals.left_at.get(row["stage"], 0) + 1
    for seed in plan.seeds_quarantined:
        code = "seed_" + _reason_code(seed.reason)
        totals.reasons[code] = totals.reasons.get(code, 0) + 1
    return totals


def verification_totals(states: list[BatchState], methods: dict[str, str]) -> dict[str, VerifierRecord]:
    """Each verifier's claims checked and passed over the run's batches (`methods`: name -> method,
    in recipe order), with its pass rate: the version metric."""
    out = {}
    for name, method in methods.items():
        checked = sum((s.verified or {}).get(name, [0, 0])[0] for s in states)
        passed = sum((s.verified or {}).get(name, [0, 0])[1] for s in states)
        out[name] = VerifierRecord(method=method, checked=checked, passed=passed,
                                   rate=round(passed / checked, 6) if checked else None)
    return out


def published_rows(states: list[BatchState], schema: pa.Schema = ROW_SCHEMA,
                   declared: Sequence[Declared] = ()) -> list[dict[str, Any]]:
    """Accepted rows of passing batches, in batch order, restricted to the table's columns. A key
    that is neither a column nor declared internal by the line (`declared`) is nobody's column: an
    UndeclaredColumnError naming it, never a silent drop."""
    columns, internal = set(schema.names), internal_keys(declared)
    rows = []
    for state in sorted(states, key=lambda s: s.batch_index):
        if state.status == "passed":
            for row in state.rows:
                if not row.keys() <= columns:
                    check_declared(row, schema, internal, declared, where=f"{row.get('id')} of batch {state.batch_id}")
                rows.append({k: v for k, v in row.items() if k in columns})
    return rows


def quarantine_records(plan: RunPlan, states: list[BatchState]) -> list[dict[str, Any]]:
    """Every row not published, with its status, reason and (for failed batches) the GX result."""
    records = [_seed_record(q) for q in plan.seeds_quarantined]
    for state in sorted(states, key=lambda s: s.batch_index):
        validation = json.dumps(state.validation, default=str) if state.status == "quarantined" else None
        for status, rows in (("rejected", state.rejected), ("quarantined", state.quarantined)):
            for row in rows:
                body = {k: v for k, v in row.items() if k not in ("stage", "reason")}
                records.append({
                    "batch_id": state.batch_id, "stage": row["stage"], "status": status, "reason": row["reason"],
                    "location": row["id"], "row": json.dumps(body, default=str, ensure_ascii=False),
                    "validation": validation if row["stage"] == "validate" else None,
                })
    return records


def _seed_record(row: QuarantinedRow) -> dict[str, Any]:
    return {"batch_id": None, "stage": row.stage, "status": "quarantined", "reason": row.reason,
            "location": row.location, "row": row.payload, "validation": None}


def not_published_reason(dataset: str, totals: RunTotals, min_rows: int, quarantine_uri: str) -> str:
    """One line for a run that publishes nothing: how many rows passed and why the rest did not."""
    top = sorted(totals.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    reasons = ", ".join(f"{code} {count}" for code, count in top) or "no rows were generated"
    return (f"{dataset}: {totals.accepted} of {totals.generated} generated rows passed, fewer than "
            f"publish.min_rows ({min_rows}); nothing published. Top reasons: {reasons}. "
            f"The rows are kept in {quarantine_uri}")


UNPRICED = Prices()  # frozen: one shared default for a run without prices

SUMMARY_FIELDS = (
    "version", "run_id", "method", "generated", "accepted", "rejected", "quarantined", "real_published",
    "seeds_quarantined", "seeds_recycled", "seed_versions", "seed_real_share", "quality",
    "batches", "batches_passed", "batches_quarantined", "batches_resumed", "engine_requests", "engine_busy_seconds",
    "engine_busy_share", "engines_ready_seconds", "first_batch_seconds", "reasons", "prefect_flow_run_id",
    "engine_nodes", "engine_batches_retried", "stopped", "target_rows", "budget", "batches_planned", "cost",
)


def run_summary(metadata: VersionMetadata, seconds: float) -> dict[str, Any]:
    """What `synthfactory run --json` prints: the commit metadata's headline numbers, under the
    keys the commit holds them."""
    commit = metadata.as_commit()
    return {"dataset": metadata.dataset_uri, **{key: commit.get(key) for key in SUMMARY_FIELDS},
            "seconds": round(seconds, 3)}


def _histogram(scores: list[float], bins: int = 5) -> dict[str, int]:
    labels = [f"{i / bins:.1f}-{(i + 1) / bins:.1f}" for i in range(bins)]
    counts = dict.fromkeys(labels, 0)
    for score in scores:
        counts[labels[min(int(score * bins), bins - 1)]] += 1
    return counts


def commit_metadata(plan: RunPlan, states: list[BatchState], totals: RunTotals, facts: RunFacts, *, method: str,
                    verification: dict[str, VerifierRecord], judging: Judging | None = None,
                    quality: Quality | None = None, not_published_because: str | None = None,
                    prices: Prices = UNPRICED) -> VersionMetadata:
    """What the Delta commit records about the run that produced a version: the one place the
    record is written. `facts`: what the run driver measured (engines, stop, flow run, suite);
    the rest is what publishing adds. A `not_published_because` means the version was not published
    (no judging, no quality)."""
    scores = [r["score"] for s in states if s.status == "passed" for r in s.rows
              if r["source"] != "real" and r["score"] is not None]  # null: no judge ran (verified recipes)
    ordered = sorted(states, key=lambda s: s.batch_index)
    gate = GateRecord(
        suite=facts.suite,
        outcomes={s.batch_id: s.status for s in ordered},
        failures={s.batch_id: s.validation["failed_expectations"] for s in ordered
                  if s.status == "quarantined" and s.validation},
        data_docs={s.batch_id: s.validation["data_docs_url"] for s in ordered
                   if s.status == "quarantined" and s.validation and s.validation.get("data_docs_url")},
    )
    return VersionMetadata.model_validate({
        "version": plan.version, "run_id": plan.run_id, "recipe_hash": plan.recipe_hash,
        "dataset": plan.dataset, "generator_model": plan.generator.model, "judge_model": plan.judge_model,
        "prompt_template_hash": plan.template_hash, "gate": gate,
        "totals": totals.model_copy(update={"batches_resumed": facts.batches_resumed}),
        "acceptance_rate": totals.accepted / totals.generated if totals.generated else 0.0,
        "mean_score": sum(scores) / len(scores) if scores else None,
        "score_histogram": _histogram(scores),
        "cost": run_cost(states, prices, totals.accepted),
        "dataset_uri": facts.dataset_uri, "prefect_flow_run_id": facts.prefect_flow_run_id,
        "first_batch_seconds": facts.first_batch_seconds, "engines": facts.engines, "stop": facts.stop,
        "recipe": facts.recipe, "method": method, "verification": verification,
        "judging": judging or Judging(), "quality": quality,
        "published": not_published_because is None, "not_published_because": not_published_because,
    })
