"""A judge measured against labelled rows: `synthfactory calibrate RECIPE --labels FILE`.

The recipe's judges (model, rubric, method, engine, panel and aggregate) grade every labelled row
through the same `Panel.grade` a run uses. The report: ROC-AUC of the score; accuracy, precision,
recall, F1 and Cohen's kappa at the recipe's pass mark; AUC per criterion, per judge and per kind
of bad row; the lowest threshold that reaches a target precision and the recall it keeps; the
score's correlation with response length (verbosity bias); a calibration plot (score deciles vs
share good) and a ROC curve.

Everything goes to `{store}/{name}/_calibration/{fingerprint}/` where the fingerprint hashes what
decides a score (every judge, rubric, model, engine, scale and aggregate; not the threshold), so a
published version can cite the calibration of exactly the judges that graded it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synthfactory.errors import UserError
from synthfactory.inputs.readers import PAYLOAD_CHARS, QuarantinedRow, read_records
from synthfactory.lineage import stable_hash
from synthfactory.recipe import GradingConfig, file_fingerprint

CALIBRATION_DIR = "_calibration"
REPORT = "report.json"
SCORES = "scores.parquet"
ROC_PLOT = "roc.png"
CALIBRATION_PLOT = "calibration.png"
GOOD = {"good", "1", "true", "yes", "pass", "accept"}
BAD = {"bad", "0", "false", "no", "fail", "reject"}


def fingerprint(grading: GradingConfig) -> str:
    """What decides a row's score, hashed: everything in `grading` but the threshold and retries."""
    decides = grading.model_dump(mode="json", exclude={"threshold", "max_attempts"})
    return stable_hash("judge", decides, length=12)


def calibration_folder(dataset_uri: str, grading: GradingConfig) -> Path:
    return Path(dataset_uri.removeprefix("file://")) / CALIBRATION_DIR / fingerprint(grading)


# -- labelled rows ------------------------------------------------------------------------------
LABEL_MAX_CHARS = 100_000  # a labelled row longer than this is a corrupt line, not a response


@dataclass
class LabelSet:
    """The labelled rows a judge is measured on, and the lines that could not be one (row data:
    quarantined with reason and file:line, counted in the report, never dropped silently)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)


def _label_row(fields: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The row a labelled record makes, or why it cannot make one."""
    missing = [k for k in ("prompt", "text", "label") if fields.get(k) in (None, "")]
    if missing:
        return None, f"missing {', '.join(missing)}"
    wrong = [k for k in ("prompt", "text") if not isinstance(fields[k], str)]
    if wrong:
        return None, f"wrong_type: {', '.join(wrong)} must be text"
    label = str(fields["label"]).strip().lower()
    if label not in GOOD | BAD:
        return None, f"bad_label: {fields['label']!r} is neither good nor bad"
    return {"id": str(fields.get("id") or stable_hash(fields["prompt"], fields["text"])),
            "prompt": fields["prompt"], "text": fields["text"], "good": label in GOOD,
            "kind": str(fields.get("kind") or ("good" if label in GOOD else "bad")),
            "source": fields["source"] if isinstance(fields.get("source"), str) else None}, None


def load_labels(path: str | Path) -> LabelSet:
    """Rows with `prompt`, `text` and `label` (good/bad, 1/0, true/false), from JSONL or Parquet;
    `kind` (what makes a bad row bad) and `id` are kept when present. A bad line (broken JSON,
    invalid UTF-8, empty, too long, missing or wrong fields) is quarantined with its reason and
    file:line; a file with no usable rows, or only one kind of label, is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels: no such file: {path}")
    fmt = "parquet" if path.suffix == ".parquet" else "jsonl"
    rows: list[dict[str, Any]] = []
    quarantined: list[QuarantinedRow] = []
    for record in read_records(path, fmt, max_chars=LABEL_MAX_CHARS, what="--labels", limit="the labels limit"):
        row, reason = _label_row(record.fields) if record.reason is None and record.fields else (None, record.reason)
        if row is None:
            quarantined.append(QuarantinedRow("labels", reason or "empty", record.raw[:PAYLOAD_CHARS],
                                              record.location))
        else:
            rows.append(row)
    if not rows:
        first = f"; first: {quarantined[0].location}: {quarantined[0].reason}" if quarantined else ""
        raise UserError(f"{path}: no usable labelled rows ({len(quarantined)} quarantined{first})")
    if all(r["good"] for r in rows) or not any(r["good"] for r in rows):
        raise UserError(f"{path}: needs both good and bad rows to measure a judge")
    return LabelSet(rows, quarantined)


# -- the measures ------------------------------------------------------------------------------
def roc_auc(good: list[bool], scores: list[float]) -> float | None:
    """P(a good row scores above a bad one), ties counting half (Mann-Whitney U / n_good n_bad)."""
    y = np.asarray(good, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_good, n_bad = int(y.sum()), int((~y).sum())
    if not n_good or not n_bad:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_good * (n_good + 1) / 2) / (n_good * n_bad))


def roc_curve(good: list[bool], scores: list[float]) -> list[tuple[float, float, float]]:
    """(threshold, false-positive rate, true-positive rate) for every distinct threshold."""
    y = np.asarray(good, dtype=bool)
    s = np.asarray(scores, dtype=float)
    points = [(math.inf, 0.0, 0.0)]
    for t in sorted(set(s.tolist()), reverse=True):
        accepted = s >= t
        points.append((t, float((accepted & ~y).sum() / max(1, (~y).sum())),
                       float((accepted & y).sum() / max(1, y.sum()))))
    return points


def at_threshold(good: list[bool], scores: list[float], threshold: float) -> dict[str, Any]:
    """Accepting rows that score >= threshold: confusion counts, accuracy, precision, recall, F1, kappa."""
    y = np.asarray(good, dtype=bool)
    accepted = np.asarray(scores, dtype=float) >= threshold
    tp, fp = int((accepted & y).sum()), int((accepted & ~y).sum())
    fn, tn = int((~accepted & y).sum()), int((~accepted & ~y).sum())
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {"threshold": threshold, "accepted_good": tp, "accepted_bad": fp, "rejected_good": fn,
            "rejected_bad": tn, "accuracy": (tp + tn) / n if n else None, "precision": precision,
            "recall": recall, "f1": f1, "kappa": cohen_kappa(y.tolist(), accepted.tolist())}


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Agreement of two yes/no labellings beyond chance (here: the labels and the judge's verdicts)."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = len(x)
    if not n:
        return None
    observed = float((x == y).mean())
    expected = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return None if expected == 1.0 else (observed - expected) / (1 - expected)


def threshold_for_precision(good: list[bool], scores: list[float], target: float) -> dict[str, Any] | None:
    """The lowest threshold whose accepted rows are at least `target` precise (so it keeps the most
    recall), with that precision and recall; None when no threshold reaches it."""
    best = None
    for t in sorted(set(float(v) for v in scores)):
        stats = at_threshold(good, scores, t)
        if stats["precision"] is not None and stats["precision"] >= target:
            best = {"threshold": t, "precision": stats["precision"], "recall": stats["recall"]}
            break
    return best


def deciles(good: list[bool], scores: list[float]) -> list[dict[str, Any]]:
    """Rows sorted by score in ten equal groups: each group's score range, mean score and share good."""
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    y = np.asarray(good, dtype=bool)[order]
    s = np.asarray(scores, dtype=float)[order]
    bins = []
    for part in np.array_split(np.arange(len(s)), min(10, len(s))):
        if len(part):
            bins.append({"rows": int(len(part)), "score_min": float(s[part].min()), "score_max": float(s[part].max()),
                         "mean_score": float(s[part].mean()), "share_good": float(y[part].mean())})
    return bins


def spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation; None when either side is constant or there are fewer than 3 values."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# -- running it --------------------------------------------------------------------------------
def grade_labels(rows: list[dict[str, Any]], grading: GradingConfig, chats: list[Callable | None],
                 chunk: int = 16, workers: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """Every labelled row graded by the panel, in chunks sent to the engines `workers` at a time:
    per row its score (None if a judge could not read it), every criterion and every judge."""
    from concurrent.futures import ThreadPoolExecutor

    from synthfactory.grading.panel import Panel
    from synthfactory.lineage import sampling_seed

    panel = Panel(grading)

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
               labels_path: Path, recipe_name: str, quarantined: list[QuarantinedRow] | None = None
               ) -> dict[str, Any]:
    """The numbers, computed from the per-row scores alone (the test recomputes them from the file);
    `quarantined`: the labelled lines that could not be read, counted and listed with their reasons."""
    quarantined = quarantined or []
    scored = [r for r in graded if r["score"] is not None]
    good = [r["good"] for r in scored]
    scores = [r["score"] for r in scored]
    kinds = sorted({r["kind"] for r in scored if not r["good"]})
    criteria = sorted({k for r in scored for k in r["criteria"]})
    judges = sorted({k for r in scored for k in r["judges"]}) if grading.judges is not None else []
    suggested = threshold_for_precision(good, scores, target_precision)
    at_recipe = at_threshold(good, scores, grading.pass_mark)
    lengths = [float(len(r["text"])) for r in scored]
    return {
        "recipe": recipe_name, "fingerprint": fingerprint(grading),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": {"file": labels_path.name, "sha256": file_fingerprint(labels_path)[:16], "rows": len(graded),
                   "good": sum(r["good"] for r in graded), "bad": sum(not r["good"] for r in graded),
                   "quarantined": len(quarantined),
                   "quarantined_rows": [{"location": q.location, "reason": q.reason} for q in quarantined]},
        "judges": [{"name": c.name, "method": c.method, "model": c.model, "weight": c.weight} for c in grading.panel],
        "aggregate": grading.aggregate if grading.judges is not None else None,
        "unreadable": len(graded) - len(scored),
        "auc": roc_auc(good, scores),
        "auc_per_criterion": {c: roc_auc([r["good"] for r in scored if c in r["criteria"]],
                                         [r["criteria"][c] for r in scored if c in r["criteria"]]) for c in criteria},
        "auc_per_judge": {j: roc_auc([r["good"] for r in scored], [r["judges"][j] for r in scored]) for j in judges},
        "auc_per_kind": {k: roc_auc([r["good"] for r in scored if r["good"] or r["kind"] == k],
                                    [r["score"] for r in scored if r["good"] or r["kind"] == k]) for k in kinds},
        "mean_score_per_kind": {k: float(np.mean([r["score"] for r in scored if r["kind"] == k]))
                                for k in sorted({r["kind"] for r in scored})},
        "at_recipe_threshold": at_recipe,
        "target_precision": target_precision,
        "threshold_for_target_precision": suggested,
        "verbosity_spearman": spearman(scores, lengths),
        "verbosity_spearman_good_rows": spearman([s for s, g in zip(scores, good) if g],
                                                 [n for n, g in zip(lengths, good) if g]),
        "deciles": deciles(good, scores),
    }


def write_calibration(folder: Path, report: dict[str, Any], graded: list[dict[str, Any]]) -> Path:
    """report.json, scores.parquet (one row per labelled row) and the two plots."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([
        {"id": r["id"], "kind": r["kind"], "good": r["good"], "score": r["score"], "error": r["error"],
         "criteria": json.dumps(r["criteria"], sort_keys=True), "judges": json.dumps(r["judges"], sort_keys=True),
         "text_chars": len(r["text"])} for r in graded])
    pq.write_table(table, folder / SCORES)
    _plots(folder, report, [r for r in graded if r["score"] is not None])
    (folder / REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


def _plots(folder: Path, report: dict[str, Any], scored: list[dict[str, Any]]) -> None:
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
    fig.savefig(folder / ROC_PLOT, dpi=100)
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
    fig.savefig(folder / CALIBRATION_PLOT, dpi=100)
    plt.close(fig)


def latest_calibration(dataset_uri: str, grading: GradingConfig) -> dict[str, Any] | None:
    """The calibration of exactly these judges, if one was run for this dataset: what a version cites."""
    folder = calibration_folder(dataset_uri, grading)
    path = folder / REPORT
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    suggested = report.get("threshold_for_target_precision") or {}
    threshold = grading.pass_mark
    if suggested and abs(suggested.get("threshold", -1) - threshold) <= 5e-4:  # as written in a recipe, 3 places
        provenance = f"from calibrate: the lowest threshold with precision >= {report['target_precision']}"
    else:
        provenance = ("set in the recipe" + (f"; calibrate suggests {suggested['threshold']:.4g} for precision >= "
                                             f"{report['target_precision']}" if suggested else ""))
    import pyarrow.parquet as pq

    rows = [r for r in pq.read_table(folder / SCORES).to_pylist() if r["score"] is not None]
    at = at_threshold([r["good"] for r in rows], [r["score"] for r in rows], threshold)
    return {"fingerprint": report["fingerprint"], "path": str(folder), "created": report["created"],
            "labels": report["labels"], "auc": report["auc"], "threshold": threshold,
            "threshold_provenance": provenance, "precision": at["precision"], "recall": at["recall"],
            "kappa": at["kappa"], "target_precision": report["target_precision"],
            "suggested_threshold": suggested.get("threshold"),
            "verbosity_spearman": report.get("verbosity_spearman")}
