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
        "## Cost",
        "",
        f"{cost.get('prompt_tokens', 0):,} prompt + {cost.get('completion_tokens', 0):,} completion tokens, "
        f"{_num(cost.get('engine_seconds'), 1)} engine-seconds.",
    ]
    return "\n".join(lines) + "\n"


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
