"""Run reports as people read them (Prefect artifacts, logs): markdown and tables from the
commit metadata, so the report and the published version can never disagree."""

from __future__ import annotations

from typing import Any


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def _docs_link(meta: dict[str, Any], batch: str) -> str:
    url = meta.get("data_docs", {}).get(batch)
    return f"[validation result]({url})" if url else "-"


def run_report_markdown(meta: dict[str, Any]) -> str:
    """Counts, acceptance, scores, quality, validation per batch, cost, and where the data is."""
    cost, quality = meta.get("cost", {}), meta.get("quality", {})
    if meta.get("published", True):
        head = [f"# {meta['dataset']} version {meta['version']}", "",
                f"Published to `{meta.get('dataset_uri')}` as version **{meta['version']}** by run `{meta['run_id']}` "
                f"(method `{meta.get('method', 'text')}`, recipe hash `{meta['recipe_hash']}`). Load it with "
                f"`synthfactory.load_dataset_version(\"{meta.get('dataset_uri')}\", version={meta['version']})`."]
    else:
        head = [f"# {meta['dataset']}: run `{meta['run_id']}` published nothing", "",
                f"**{meta.get('not_published_because')}** (recipe hash `{meta['recipe_hash']}`)."]
    lines = [
        *head,
        "",
        "| generated | accepted | rejected | quarantined | acceptance rate | real rows added | seed rows quarantined |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {meta['generated']} | {meta['accepted']} | {meta['rejected']} | {meta['quarantined']} | "
        f"{_pct(meta['accepted'], meta['generated'])} | {meta.get('real_published', 0)} | {meta['seeds_quarantined']} |",
        "",
        f"Generator `{meta['generator_model']}`, judge `{meta['judge_model']}`; mean judge score of published rows: "
        f"{_num(meta.get('mean_score'))}.",
        "",
        _judging_line(meta),
        "",
        "## Score distribution (published synthetic rows)",
        "",
        "| score | rows |",
        "| --- | --- |",
        *[f"| {bucket} | {count} |" for bucket, count in meta.get("score_histogram", {}).items()],
        "",
        "## Quality",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {key} | {_num(value)} |" for key, value in quality.items()],
        "",
        "## Validation per batch",
        "",
        "| batch | outcome | failed expectations | Data Docs |",
        "| --- | --- | --- | --- |",
        *[f"| `{batch}` | {status} | {', '.join(meta.get('validation_failures', {}).get(batch, [])) or '-'} | "
          f"{_docs_link(meta, batch)} |" for batch, status in meta.get("validation", {}).items()],
        "",
        "## Why the run stopped",
        "",
        stop_sentence(meta),
        "",
        "## Cost",
        "",
        *cost_table(cost),
    ]
    return "\n".join(lines) + "\n"


def stop_sentence(meta: dict[str, Any]) -> str:
    """`stopped: REASON` and what it means, as the report and the card say it."""
    stopped, target = meta.get("stopped"), meta.get("target_rows")
    budget = meta.get("budget") or {}
    planned, ran = meta.get("batches_planned"), meta.get("batches")
    limit = budget.get("stopped_by")
    why = {
        "complete": "every planned batch ran",
        "target": f"the target of {target} accepted rows was reached; surplus rows of batches in flight are "
                  "in the quarantine as `over_target`",
        "budget": f"starting another batch would have crossed `budget.{limit}` = "
                  f"{(budget.get('limits') or {}).get(limit)}; the batches in flight finished "
                  f"({budget.get('batches_in_flight_at_stop')} of them)",
        "max_candidates": "`batches.max_candidates` was reached" + (f" before {target} rows" if target else ""),
        "seeds_exhausted": f"the seeds ran out (every seed times `samples_per_seed`) before {target} rows",
    }.get(stopped)
    if why is None:
        return "Not recorded (a version published before runs recorded why they stopped)."
    return f"`stopped: {stopped}`" + (f" (`{limit}`)" if limit else "") + f": {why}; {ran} of {planned} planned batches ran."


def cost_table(cost: dict[str, Any]) -> list[str]:
    """Tokens, engine-seconds and money for the run, per accepted and per rejected row (money:
    only where the recipe's card gives a price)."""
    per_accepted, per_rejected = cost.get("per_accepted_row") or {}, cost.get("per_rejected_row") or {}
    currency = cost.get("currency") or ""

    def money(value: Any) -> str:
        return "n/a (no price in the recipe's card)" if value is None else f"{value:.6f} {currency}"

    return [
        "| | tokens | engine-seconds | money |",
        "| --- | --- | --- | --- |",
        f"| run | {cost.get('tokens', cost.get('prompt_tokens', 0) + cost.get('completion_tokens', 0)):,} "
        f"({cost.get('prompt_tokens', 0):,} prompt + {cost.get('completion_tokens', 0):,} completion) | "
        f"{_num(cost.get('engine_seconds'), 1)} | {money(cost.get('money'))} |",
        f"| per accepted row (the run's spend over the rows it published) | {_num(per_accepted.get('tokens'), 1)} | "
        f"{_num(per_accepted.get('engine_seconds'))} | {money(per_accepted.get('money'))} |",
        f"| per rejected row (mean spend on a row not published) | {_num(per_rejected.get('tokens'), 1)} | "
        f"{_num(per_rejected.get('engine_seconds'))} | {money(per_rejected.get('money'))} |",
    ]


def rejection_table(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per quarantined batch and per rejection reason, for a table artifact."""
    rows: list[dict[str, Any]] = [
        {"kind": "quarantined batch", "what": batch, "rows": None,
         "detail": ", ".join(meta.get("validation_failures", {}).get(batch, [])),
         "data_docs": meta.get("data_docs", {}).get(batch, "")}
        for batch, status in meta.get("validation", {}).items() if status == "quarantined"
    ]
    rows += [{"kind": "reason", "what": reason, "rows": count, "detail": "", "data_docs": ""}
             for reason, count in sorted(meta.get("reasons", {}).items(), key=lambda kv: -kv[1])]
    return rows


def _judging_line(meta: dict[str, Any]) -> str:
    """The judges in one sentence: panel, agreement, calibration (or its absence), bias checks."""
    judges = meta.get("judges") or []
    calibration = meta.get("judge_calibration")
    bias = meta.get("judge_bias") or {}
    parts = [f"Judges: {', '.join(j['name'] + ' (' + j['method'] + ')' for j in judges)}" if judges else "Judges: -"]
    if meta.get("judge_agreement") is not None:
        parts.append(f"agreement (Krippendorff's alpha) {_num(meta['judge_agreement'])}")
    parts.append(f"calibrated ROC-AUC {_num(calibration['auc'])}, threshold {calibration['threshold_provenance']}"
                 if calibration else "no calibration on record")
    parts.append(f"score vs length (Spearman) {_num(bias.get('verbosity_spearman'))}")
    if bias.get("self_preference") is not None:
        parts.append(f"self-preference {_num(bias['self_preference'])}")
    if bias.get("pairs_checked"):
        parts.append(f"position bias {_num(bias.get('position_bias'))}")
    return "; ".join(parts) + "."
