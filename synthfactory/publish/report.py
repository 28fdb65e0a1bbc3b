"""Run reports as people read them (Prefect artifacts, logs): markdown and tables from the
commit metadata, so the report and the published version can never disagree."""

from __future__ import annotations

from typing import Any

from synthfactory.model.metadata import VersionMetadata


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def _docs_link(meta: VersionMetadata, batch: str) -> str:
    url = meta.gate.data_docs.get(batch)
    return f"[validation result]({url})" if url else "-"


def run_report_markdown(meta: VersionMetadata) -> str:
    """Counts, acceptance, scores, quality, validation per batch, cost, and where the data is."""
    totals, quality = meta.totals, meta.quality.measured() if meta.quality else {}
    if meta.published:
        head = [f"# {meta.dataset} version {meta.version}", "",
                f"Published to `{meta.dataset_uri}` as version **{meta.version}** by run `{meta.run_id}` "
                f"(method `{meta.method}`, recipe hash `{meta.recipe_hash}`). Load it with "
                f"`synthfactory.load_dataset_version(\"{meta.dataset_uri}\", version={meta.version})`."]
    else:
        head = [f"# {meta.dataset}: run `{meta.run_id}` published nothing", "",
                f"**{meta.not_published_because}** (recipe hash `{meta.recipe_hash}`)."]
    lines = [
        *head,
        "",
        "| generated | accepted | rejected | quarantined | acceptance rate | real rows added | seed rows quarantined |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {totals.generated} | {totals.accepted} | {totals.rejected} | {totals.quarantined} | "
        f"{_pct(totals.accepted, totals.generated)} | {totals.real_published} | {totals.seeds_quarantined} |",
        "",
        f"Generator `{meta.generator_model}`, judge `{meta.judge_model}`; mean judge score of published rows: "
        f"{_num(meta.mean_score)}." if meta.judge_model or not meta.verification else
        f"Generator `{meta.generator_model}`; no judge ran: rows were kept by verification alone.",
        "",
        _judging_line(meta) if meta.judge_model or not meta.verification else "",
        "",
        *[f"Verifier `{name}` (`{v.method}`): {v.passed} of {v.checked} checked passed ({_num(v.rate)}); "
          "the rest were quarantined as `verify_failed`." for name, v in meta.verification.items()],
        *([""] if meta.verification else []),
        "## Where rows left the line",
        "",
        *_line_table(meta),
        "",
        *(["## Score distribution (published synthetic rows)", "", "| score | rows |", "| --- | --- |",
           *[f"| {bucket} | {count} |" for bucket, count in meta.score_histogram.items()], ""]
          if any(meta.score_histogram.values()) else []),
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
        *[f"| `{batch}` | {status} | {', '.join(meta.gate.failures.get(batch, [])) or '-'} | "
          f"{_docs_link(meta, batch)} |" for batch, status in meta.gate.outcomes.items()],
        "",
        "## Why the run stopped",
        "",
        meta.stop.sentence(totals.batches),
        "",
        "## Cost",
        "",
        *meta.cost.table(),
    ]
    return "\n".join(lines) + "\n"


def _line_table(meta: VersionMetadata) -> list[str]:
    """Each stage of the line (`registry.STAGES`, in order) with the generated rows that left there
    (rejected or quarantined), and how many reached the end."""
    from synthfactory.registry import STAGES

    left = meta.totals.left_at
    # then `publish` (dedup across the run, trimming to the target) and any stage no longer registered
    names = [*STAGES.names, *sorted(set(left) - set(STAGES.names))]
    return ["| stage | rows that left here |", "| --- | --- |",
            *[f"| {name} | {left.get(name, 0)} |" for name in names],
            f"| (published) | {meta.totals.accepted} |"]


def rejection_table(meta: VersionMetadata) -> list[dict[str, Any]]:
    """One row per quarantined batch and per rejection reason, for a table artifact."""
    rows: list[dict[str, Any]] = [
        {"kind": "quarantined batch", "what": batch, "rows": None,
         "detail": ", ".join(meta.gate.failures.get(batch, [])), "data_docs": meta.gate.data_docs.get(batch, "")}
        for batch in meta.gate.quarantined
    ]
    rows += [{"kind": "reason", "what": reason, "rows": count, "detail": "", "data_docs": ""}
             for reason, count in sorted(meta.totals.reasons.items(), key=lambda kv: -kv[1])]
    return rows


def _judging_line(meta: VersionMetadata) -> str:
    """The judges in one sentence: panel, agreement, calibration (or its absence), bias checks."""
    judging = meta.judging
    calibration, bias = judging.calibration, judging.bias
    parts = [f"Judges: {', '.join(f'{j.name} ({j.method})' for j in judging.judges)}" if judging.judges
             else "Judges: -"]
    if judging.agreement is not None:
        parts.append(f"agreement (Krippendorff's alpha) {_num(judging.agreement)}")
    parts.append(f"calibrated ROC-AUC {_num(calibration.auc)} on {calibration.labels.rows} labelled rows, threshold "
                 f"{calibration.threshold_provenance}" if calibration else "no calibration on record")
    from synthfactory.publish.card import what_a_person_would_see

    parts.append(what_a_person_would_see(calibration))
    parts.append(f"score vs length (Spearman) {_num(bias.verbosity_spearman if bias else None)}")
    if bias and bias.self_preference is not None:
        parts.append(f"self-preference {_num(bias.self_preference)}")
    if bias and bias.pairs_checked:
        parts.append(f"position bias {_num(bias.position_bias)}")
    return "; ".join(parts) + "."
