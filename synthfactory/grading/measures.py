"""The measures of a judge against labels: ROC-AUC and its bootstrap interval, the confusion at a
threshold with Wilson intervals, Cohen's kappa, the threshold for a target precision, score deciles
and rank correlation. Pure functions of (labels, scores), shared by `calibration`, the grounded
verifier's threshold and the labellers' agreement."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


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


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> list[float] | None:
    """95% Wilson score interval of a proportion: honest at small n and at 0 or 1 (the normal
    approximation is not); None when there were no trials."""
    if trials <= 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def auc_interval(good: list[bool], scores: list[float], resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95% percentile bootstrap interval of the ROC-AUC (rows resampled with replacement, a fixed
    seed so a report is reproducible; resamples with one class only are skipped)."""
    y = np.asarray(good, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if not y.any() or y.all():
        return None
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(y), len(y))
        yy = y[pick]
        n_good = int(yy.sum())
        if 0 < n_good < len(yy):
            ranks = rankdata(s[pick])
            values.append((ranks[yy].sum() - n_good * (n_good + 1) / 2) / (n_good * (len(yy) - n_good)))
    if not values:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def with_intervals(stats: dict[str, Any]) -> dict[str, Any]:
    """`at_threshold`'s numbers plus Wilson intervals of precision and recall and their counts."""
    accepted = stats["accepted_good"] + stats["accepted_bad"]
    positives = stats["accepted_good"] + stats["rejected_good"]
    return {**stats, "accepted": accepted, "true_positives": stats["accepted_good"], "good_rows": positives,
            "precision_interval": wilson_interval(stats["accepted_good"], accepted),
            "recall_interval": wilson_interval(stats["accepted_good"], positives)}


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
