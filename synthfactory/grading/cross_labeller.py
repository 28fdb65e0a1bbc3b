"""A learned judge measured across labellers: trained on some labellers' rows, tested on another's.

Cross-validation scores a learned judge on rows labelled by the same labellers as the rows it was
trained on, so it also measures how well the judge learned their reading of the rubric. A change of
labeller can cost more than the interval says (issue 35: a judge at 0.822 on its own labellers'
held-out rows scored 0.45 on rows labelled independently). So when a label set names more than one
labeller, each labeller's rows are scored by a model trained on the other labellers' rows only
(every direction, with a bootstrap 95% interval of the ROC-AUC), beside the same-labeller figure
(nested CV on that labeller's rows alone, so the two differ by the labeller, not by the row count).
The lowest direction is the figure to cite (`worst`).

A row belongs to the labeller whose label it carries (`labeller`: a file row's field, a labels
table's latest label); rows without one are left out of this measure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthfactory.grading import learned_model as lm
from synthfactory.grading.measures import at_threshold, auc_interval, roc_auc, with_intervals

MIN_CLASS_ROWS = 2  # good and bad rows a training side needs (the inner CV's fewest folds)


def labeller_counts(labellers: list[str | None], good: np.ndarray) -> dict[str, dict[str, int]]:
    """Rows and good rows per named labeller."""
    out: dict[str, dict[str, int]] = {}
    for name, g in zip(labellers, good.tolist(), strict=True):
        if name:
            entry = out.setdefault(str(name), {"rows": 0, "good": 0})
            entry["rows"] += 1
            entry["good"] += int(bool(g))
    return dict(sorted(out.items()))


def _trainable_reason(good: np.ndarray) -> str | None:
    n_good, n_bad = int(good.sum()), int((~good).sum())
    if n_good < MIN_CLASS_ROWS or n_bad < MIN_CLASS_ROWS:
        return f"too few rows to train on ({n_good} good, {n_bad} bad; {MIN_CLASS_ROWS} of each needed)"
    return None


def cross_labeller(table: lm.FeatureTable, good: np.ndarray, labellers: list[str | None], threshold: float,
                   trainable: np.ndarray | None = None, seed: int = lm.SEED) -> dict[str, Any] | None:
    """Per labeller: the judge (C and PCA width chosen by inner CV, as `lm.train` does) trained on
    the other labellers' trainable rows and scored on this labeller's rows: ROC-AUC with its bootstrap
    interval, precision/recall at `threshold`; and the same-labeller nested CV AUC on its trainable
    rows. `trainable`: which rows may train (default all; a held-out split is scored, never fitted).
    None when fewer than two labellers are named."""
    good = np.asarray(good, dtype=bool)
    names = np.array([str(n) if n else "" for n in labellers], dtype=object)
    trainable = np.ones(len(good), dtype=bool) if trainable is None else np.asarray(trainable, dtype=bool)
    counts = labeller_counts(list(labellers), good)
    if len(counts) < 2:
        return None
    directions, within = [], []
    for name in counts:
        test = np.flatnonzero(names == name)
        train = np.flatnonzero((names != name) & (names != "") & trainable)
        others = sorted(set(names[train].tolist()))
        entry: dict[str, Any] = {"train": others, "test": name, "train_rows": len(train),
                                 "train_good": int(good[train].sum()), "rows": len(test),
                                 "good": int(good[test].sum()), "auc": None, "auc_interval": None}
        reason = _trainable_reason(good[train])
        if reason is None:
            c, dims, _ = lm.select(table.take(train), good[train], seed)
            model = lm.fit(table.take(train), good[train], c, dims, seed)
            scores = model.scores(table.take(test))
            labels, values = good[test].tolist(), scores.tolist()
            entry.update(auc=roc_auc(labels, values), auc_interval=auc_interval(labels, values),
                         at_threshold=with_intervals(at_threshold(labels, values, threshold)),
                         chosen={"c": c, "dims": model.dims},
                         scores=[round(s, 6) for s in values], scores_good=labels)
        else:
            entry["skipped"] = reason
        directions.append(entry)
        own = np.flatnonzero((names == name) & trainable)
        same: dict[str, Any] = {"labeller": name, "rows": len(own), "good": int(good[own].sum()),
                                "auc": None, "auc_interval": None}
        reason = _trainable_reason(good[own])
        if reason is None:
            cv = lm.cross_validate(table.take(own), good[own], threshold, seed=seed)
            same.update(auc=cv["auc"], auc_interval=auc_interval(cv["oof_good"], cv["oof_scores"]))
        else:
            same["skipped"] = reason
        within.append(same)
    measured = [d for d in directions if d["auc"] is not None]
    worst = min(measured, key=lambda d: d["auc"]) if measured else None
    return {"measured_on": "each labeller's rows scored by a model trained only on the other labellers' rows; "
                           "within: nested CV on one labeller's rows",
            "labellers": counts, "threshold": threshold, "directions": directions, "within": within,
            "worst": None if worst is None else {k: worst[k] for k in ("train", "test", "rows", "good", "train_rows",
                                                                       "train_good", "auc", "auc_interval")}}


def summary(report: dict[str, Any] | None, threshold: float | None = None) -> dict[str, Any] | None:
    """The report without per-row scores (for calibrate's report and a version's card), precision
    and recall at `threshold` (the version's) recomputed from them when given."""
    if not report:
        return None
    directions = []
    for d in report.get("directions") or []:
        entry = {k: v for k, v in d.items() if k not in ("scores", "scores_good")}
        if threshold is not None and d.get("scores") is not None:
            entry["at_threshold"] = with_intervals(at_threshold(d["scores_good"], d["scores"], threshold))
        directions.append(entry)
    return {**report, "directions": directions,
            **({"threshold": threshold} if threshold is not None else {})}


def _ci(interval: list[float] | None) -> str:
    return f"95% CI {interval[0]:.2f}-{interval[1]:.2f}" if interval else "95% CI n/a"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def direction_text(d: dict[str, Any]) -> str:
    """'trained on labeller A's 113 rows (9 good), tested on labeller B's 127 rows (9 good):
    ROC-AUC 0.61 (95% CI ...)'."""
    return (f"trained on labeller{'s' if len(d['train']) > 1 else ''} {'+'.join(d['train'])}'s {d['train_rows']} rows "
            f"({d['train_good']} good), tested on labeller {d['test']}'s {d['rows']} rows ({d['good']} good): "
            f"ROC-AUC {_num(d['auc'])} ({_ci(d['auc_interval'])})")


def lines(report: dict[str, Any] | None) -> list[str]:
    """What `calibrate` and the bench print: every direction, the same-labeller figures, the worst."""
    if not report:
        return []
    out = [f"across labellers: {direction_text(d)}" + (f" (skipped: {d['skipped']})" if d.get("skipped") else "")
           for d in report["directions"]]
    out += [f"same labeller, nested CV on labeller {w['labeller']}'s {w['rows']} rows ({w['good']} good): ROC-AUC "
            f"{_num(w['auc'])} ({_ci(w['auc_interval'])})" + (f" (skipped: {w['skipped']})" if w.get("skipped") else "")
            for w in report["within"]]
    if report.get("worst"):
        out.append(f"the figure to cite (the lowest direction): {direction_text(report['worst'])}")
    return out
