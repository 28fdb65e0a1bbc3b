"""A judge measured against labelled rows: `synthfactory calibrate RECIPE --labels FILE|STORE/NAME`.

The recipe's judges (model, rubric, method, engine, panel and aggregate) grade every labelled row
through the same `Panel.grade` a run uses. The report: ROC-AUC of the score; accuracy, precision,
recall, F1 and Cohen's kappa at the recipe's pass mark; AUC per criterion, per judge and per kind
of bad row; the lowest threshold that reaches a target precision and the recall it keeps; the
score's correlation with response length (verbosity bias); a calibration plot (score deciles vs
share good) and a ROC curve. Intervals: a 95% bootstrap interval of the AUC (fixed seed) and
Wilson 95% intervals of precision and recall, with the counts behind them. The same again per
origin of the labels (`labelsets`: real outputs someone labelled, constructed rows, unknown),
because a judge measured on constructed rows says little about the rows a model makes. Learned
judges add their own cross-validated section (`learned_section`).

Everything goes to `{store}/{name}/_calibration/{fingerprint}/` (any store: `synthfactory.storage`)
where the fingerprint hashes what decides a score (every judge, rubric, model, engine, scale and
aggregate; not the threshold), so a published version can cite the calibration of exactly the
judges that graded it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from synthfactory.grading.labelsets import (  # noqa: F401 - re-exported
    BAD,
    GOOD,
    LABEL_MAX_CHARS,
    ORIGINS,
    LabelSet,
    load_label_source,
    load_labels,
)
from synthfactory.grading.measures import (  # noqa: F401 - some are re-exported
    at_threshold,
    auc_interval,
    cohen_kappa,
    deciles,
    roc_auc,
    roc_curve,
    spearman,
    threshold_for_precision,
    wilson_interval,
    with_intervals,
)
from synthfactory.inputs.readers import QuarantinedRow
from synthfactory.model.lineage import stable_hash
from synthfactory.recipe import GradingConfig
from synthfactory.storage import Location, StorageOptions

CALIBRATION_DIR = "_calibration"
REPORT = "report.json"
SCORES = "scores.parquet"
ROC_PLOT = "roc.png"
CALIBRATION_PLOT = "calibration.png"


def fingerprint(grading: GradingConfig) -> str:
    """What decides a row's score, hashed: everything in `grading` but the threshold and retries."""
    decides = grading.model_dump(mode="json", exclude={"threshold", "max_attempts"})
    return stable_hash("judge", decides, length=12)


def calibration_folder(dataset_uri: str | Location, grading: GradingConfig,
                       options: StorageOptions | None = None) -> Location:
    return Location.of(dataset_uri, options).child(CALIBRATION_DIR, fingerprint(grading))


# -- per origin, and learned judges ----------------------------------------------------------
def origin_measures(rows: list[dict[str, Any]], threshold: float) -> dict[str, dict[str, Any]]:
    """Per origin of the labels (real, constructed, unknown): n, base rate, AUC with its bootstrap
    interval, and precision/recall at the threshold with Wilson intervals. `rows`: scored rows
    (`good`, `score`, `origin`), sorted by id so the bootstrap does not depend on row order."""
    out = {}
    for origin in ORIGINS:
        part = [r for r in rows if (r.get("origin") or "unknown") == origin]
        if not part:
            continue
        good, scores = [r["good"] for r in part], [r["score"] for r in part]
        at = with_intervals(at_threshold(good, scores, threshold))
        out[origin] = {"rows": len(part), "good": sum(good), "bad": len(part) - sum(good),
                       "base_rate": sum(good) / len(part), "auc": roc_auc(good, scores),
                       "auc_interval": auc_interval(good, scores), "threshold": threshold,
                       **{k: at[k] for k in ("precision", "precision_interval", "recall", "recall_interval",
                                             "accepted", "true_positives", "good_rows", "accuracy", "kappa")}}
    return out


def calibration_panel(grading: GradingConfig, dataset_uri: Any = None) -> Any:
    """The panel `calibrate` grades with; a learned judge keeps its model beside the dataset's
    calibrations."""
    from synthfactory.grading.panel import Panel

    return Panel(grading, dataset_uri=dataset_uri)


def learned_section(panel: Any, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]] | None:
    """The report's `learned` section, filled by the learned judges of the panel that graded the
    labels (`grading.learned.learned_report`: their cross-validated numbers, never a training fit);
    None when the panel has no learned judge."""
    try:
        from synthfactory.grading.learned import learned_report
    except ImportError:
        return None
    return learned_report(panel, rows) or None


# -- running it --------------------------------------------------------------------------------
def grade_labels(rows: list[dict[str, Any]], grading: GradingConfig, chats: list[Callable | None],
                 chunk: int = 16, workers: int = 1, seed: int = 0, panel: Any = None) -> list[dict[str, Any]]:
    """Every labelled row graded by the panel (`calibration_panel`'s unless given), in chunks sent
    to the engines `workers` at a time: per row its score (None if a judge could not read it),
    every criterion and every judge."""
    from concurrent.futures import ThreadPoolExecutor

    from synthfactory.model.lineage import sampling_seed

    panel = panel or calibration_panel(grading)

    def one(start: int) -> list[dict[str, Any]]:
        part = rows[start:start + chunk]
        graded = panel.grade([(r["prompt"], r["text"]) for r in part], chats,
                             lambda k, attempt: sampling_seed(seed, 0, start, k, attempt))
        out = []
        for k, row in enumerate(part):
            verdict = graded.verdicts[k]
            out.append({**row, "score": verdict.score if verdict else None,
                        "criteria": dict(verdict.normalised) if verdict else {},
                        "judges": {name: values[k] for name, values in graded.by_judge.items()},
                        "error": graded.errors[k]})
        return out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [r for part in pool.map(one, range(0, len(rows), chunk)) for r in part]


def report_for(graded: list[dict[str, Any]], grading: GradingConfig, target_precision: float,
               labels: LabelSet | Path, recipe_name: str, quarantined: list[QuarantinedRow] | None = None,
               learned: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The numbers, computed from the per-row scores alone (the test recomputes them from the file).
    `labels`: the label set (or, as before, the labels file); `quarantined`: the labelled lines that
    could not be read, counted and listed with their reasons; `learned`: `learned_section`'s report."""
    if isinstance(labels, LabelSet):
        source, quarantined = dict(labels.source), quarantined if quarantined is not None else labels.quarantined
    else:
        from synthfactory.recipe import file_fingerprint

        source = {"kind": "file", "file": Path(labels).name, "sha256": file_fingerprint(Path(labels))[:16]}
    quarantined = quarantined or []
    scored = sorted((r for r in graded if r["score"] is not None), key=lambda r: r["id"])
    good = [r["good"] for r in scored]
    scores = [r["score"] for r in scored]
    kinds = sorted({r["kind"] for r in scored if not r["good"]})
    criteria = sorted({k for r in scored for k in r["criteria"]})
    judges = sorted({k for r in scored for k in r["judges"]}) if grading.judges is not None else []
    suggested = threshold_for_precision(good, scores, target_precision)
    at_recipe = with_intervals(at_threshold(good, scores, grading.pass_mark))
    lengths = [float(len(r["text"])) for r in scored]
    origins = {o: sum((r.get("origin") or "unknown") == o for r in graded) for o in ORIGINS}
    return {
        "recipe": recipe_name, "fingerprint": fingerprint(grading),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": {**source, "rows": len(graded),
                   "good": sum(r["good"] for r in graded), "bad": sum(not r["good"] for r in graded),
                   "origins": {o: n for o, n in origins.items() if n},
                   "quarantined": len(quarantined),
                   "quarantined_rows": [{"location": q.location, "reason": q.reason} for q in quarantined]},
        "judges": [{"name": c.name, "method": c.method, "model": c.model, "weight": c.weight} for c in grading.panel],
        "aggregate": grading.aggregate if grading.judges is not None else None,
        "unreadable": len(graded) - len(scored),
        "auc": roc_auc(good, scores),
        "auc_interval": auc_interval(good, scores),
        "auc_per_criterion": {c: roc_auc([r["good"] for r in scored if c in r["criteria"]],
                                         [r["criteria"][c] for r in scored if c in r["criteria"]]) for c in criteria},
        "auc_per_judge": {j: roc_auc([r["good"] for r in scored], [r["judges"][j] for r in scored]) for j in judges},
        "auc_per_kind": {k: roc_auc([r["good"] for r in scored if r["good"] or r["kind"] == k],
                                    [r["score"] for r in scored if r["good"] or r["kind"] == k]) for k in kinds},
        "mean_score_per_kind": {k: float(np.mean([r["score"] for r in scored if r["kind"] == k]))
                                for k in sorted({r["kind"] for r in scored})},
        "at_recipe_threshold": at_recipe,
        "by_origin": origin_measures(scored, grading.pass_mark),
        "target_precision": target_precision,
        "threshold_for_target_precision": suggested,
        "verbosity_spearman": spearman(scores, lengths),
        "verbosity_spearman_good_rows": spearman([s for s, g in zip(scores, good, strict=True) if g],
                                                 [n for n, g in zip(lengths, good, strict=True) if g]),
        "deciles": deciles(good, scores),
        "learned": learned,
    }


def write_calibration(folder: Location | Path, report: dict[str, Any], graded: list[dict[str, Any]]) -> Location:
    """report.json, scores.parquet (one row per labelled row) and the two plots; the report last,
    since it is what `latest_calibration` looks for."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Location.of(folder)
    table = pa.Table.from_pylist([
        {"id": r["id"], "kind": r["kind"], "good": r["good"], "origin": r.get("origin") or "unknown",
         "score": r["score"], "error": r["error"],
         "criteria": json.dumps(r["criteria"], sort_keys=True), "judges": json.dumps(r["judges"], sort_keys=True),
         "text_chars": len(r["text"])} for r in graded])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    folder.child(SCORES).write_bytes(sink.getvalue().to_pybytes())
    for name, png in _plots(report, [r for r in graded if r["score"] is not None]).items():
        folder.child(name).write_bytes(png)
    folder.child(REPORT).write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def _png(fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _plots(report: dict[str, Any], scored: list[dict[str, Any]]) -> dict[str, bytes]:
    """The ROC curve and the calibration plot, as PNG bytes by file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r["good"] for r in scored]
    scores = [r["score"] for r in scored]
    points = roc_curve(good, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([p[1] for p in points], [p[2] for p in points], drawstyle="steps-post",
            label=f"score (AUC {report['auc']:.3f})" if report["auc"] is not None else "score")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set_xlabel("false-positive rate (bad rows accepted)")
    ax.set_ylabel("true-positive rate (good rows accepted)")
    ax.set_title(f"ROC of the judge on {report['labels']['file']}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    roc = _png(fig)
    plt.close(fig)
    bins = report["deciles"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot([b["mean_score"] for b in bins], [b["share_good"] for b in bins], marker="o", label="decile")
    ax.axvline(report["at_recipe_threshold"]["threshold"], linestyle="--", color="grey", label="recipe threshold")
    ax.set_xlabel("mean judge score of the decile")
    ax.set_ylabel("share of good rows")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("calibration: score deciles vs share good")
    ax.legend(loc="upper left")
    fig.tight_layout()
    calibration = _png(fig)
    plt.close(fig)
    return {ROC_PLOT: roc, CALIBRATION_PLOT: calibration}


def latest_calibration(dataset_uri: str | Location, grading: GradingConfig,
                       options: StorageOptions | None = None) -> dict[str, Any] | None:
    """The calibration of exactly these judges, if one was run for this dataset: what a version cites."""
    folder = calibration_folder(dataset_uri, grading, options)
    try:
        report = json.loads(folder.child(REPORT).read_text())
    except FileNotFoundError:
        return None
    suggested = report.get("threshold_for_target_precision") or {}
    threshold = grading.pass_mark
    if suggested and abs(suggested.get("threshold", -1) - threshold) <= 5e-4:  # as written in a recipe, 3 places
        provenance = f"from calibrate: the lowest threshold with precision >= {report['target_precision']}"
    else:
        provenance = ("set in the recipe" + (f"; calibrate suggests {suggested['threshold']:.4g} for precision >= "
                                             f"{report['target_precision']}" if suggested else ""))
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = pq.read_table(pa.BufferReader(folder.child(SCORES).read_bytes()))
    rows = sorted((r for r in scores.to_pylist() if r["score"] is not None),
                  key=lambda r: r["id"])
    at = at_threshold([r["good"] for r in rows], [r["score"] for r in rows], threshold)
    by_origin = origin_measures(rows, threshold)  # at the version's threshold, which may not be calibrate's
    return {"fingerprint": report["fingerprint"], "path": str(folder), "created": report["created"],
            "labels": report["labels"], "auc": report["auc"], "threshold": threshold,
            "threshold_provenance": provenance, "precision": at["precision"], "recall": at["recall"],
            "kappa": at["kappa"], "target_precision": report["target_precision"],
            "suggested_threshold": suggested.get("threshold"),
            "verbosity_spearman": report.get("verbosity_spearman"),
            "by_origin": {o: {k: m[k] for k in ("rows", "good", "base_rate", "auc", "auc_interval", "precision",
                                                 "precision_interval", "recall", "recall_interval", "accepted",
                                                 "true_positives")} for o, m in by_origin.items()},
            **({"learned": [{"judge": e.get("judge"), "fingerprint": e.get("fingerprint"), "auc": e.get("auc"),
                             "training_overlap": e.get("training_overlap", 0),
                             **({"cross_labeller_worst": e["cross_labeller"]["worst"]}
                                if (e.get("cross_labeller") or {}).get("worst") else {})} for e in report["learned"]]}
               if report.get("learned") else {})}
