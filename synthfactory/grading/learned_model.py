"""The learned judge's classifier: features in, P(good) out, chosen and measured by cross-validation.

Logistic regression on standardized features; the MiniLM embeddings of prompt and response are
reduced by PCA first (or left out). The regularisation C and the PCA width are chosen by an inner
stratified k-fold on the training rows; quality is the outer stratified k-fold's out-of-fold scores
(nested, so the numbers never see the rows they are scored on), never the training fit.

A trained model is plain numbers (scaler, projection, coefficients) saved as JSON, not a pickle: a
pickle read from a store would run code. Scores are always computed by `LinearModel.scores`, so a
model reloaded from JSON gives exactly the scores it gave when trained.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np

GRID_C = (0.03, 0.3, 3.0)
GRID_DIMS = (0, 8, 32)  # PCA width of the embeddings block; 0 leaves the embeddings out
FOLDS = 5
INNER_FOLDS = 3
SEED = 0
_P = ParamSpec("_P")
_R = TypeVar("_R")


def one_blas_thread(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Small matrices: BLAS threads only contend (an 80x768 SVD took 0.3 s on 2 busy cores, 0.01 s on one)."""
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return func(*args, **kwargs)
    return wrapper


@dataclass
class FeatureTable:
    """Per row: named scalar features, and the embeddings block (prompt and response vectors) or None."""

    names: list[str]
    scalars: np.ndarray  # (n, len(names))
    embeddings: np.ndarray | None = None  # (n, 768)

    def take(self, index: np.ndarray) -> FeatureTable:
        return FeatureTable(self.names, self.scalars[index],
                            None if self.embeddings is None else self.embeddings[index])

    def __len__(self) -> int:
        return len(self.scalars)


@dataclass
class LinearModel:
    """Logistic regression over [scalars, PCA(embeddings)], standardized: plain numbers only."""

    names: list[str]
    dims: int
    c: float
    pca_mean: list[float] = field(default_factory=list)
    pca_components: list[list[float]] = field(default_factory=list)
    scaler_mean: list[float] = field(default_factory=list)
    scaler_scale: list[float] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0

    def design(self, table: FeatureTable) -> np.ndarray:
        """The columns the regression reads, before standardizing."""
        parts = [_aligned(table, self.names)]
        if self.dims:
            if table.embeddings is None:
                raise ValueError("this learned model reads embeddings; the features have none")
            parts.append((table.embeddings.astype(np.float64) - np.asarray(self.pca_mean))
                         @ np.asarray(self.pca_components).T)
        return np.hstack(parts)

    def scores(self, table: FeatureTable) -> np.ndarray:
        """P(good) per row."""
        z = (self.design(table) - np.asarray(self.scaler_mean)) / np.asarray(self.scaler_scale)
        logits = z @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LinearModel:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _aligned(table: FeatureTable, names: list[str]) -> np.ndarray:
    """The table's scalar columns in `names` order (a feature the table lacks reads 0)."""
    where = {n: i for i, n in enumerate(table.names)}
    out = np.zeros((len(table), len(names)))
    for j, name in enumerate(names):
        if name in where:
            out[:, j] = table.scalars[:, where[name]]
    return out


def principal_axes(table: FeatureTable) -> tuple[np.ndarray, np.ndarray] | None:
    """The embeddings' mean and principal axes (rows of vt, signs fixed as sklearn's PCA fixes them):
    computed once per set of rows, every PCA width of the grid is a prefix of them."""
    if table.embeddings is None or not len(table):
        return None
    x = table.embeddings.astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    return mean, vt * np.where(signs == 0, 1.0, signs)[:, None]


@one_blas_thread
def fit(table: FeatureTable, good: np.ndarray, c: float, dims: int, seed: int = SEED,
        axes: tuple[np.ndarray, np.ndarray] | None = None) -> LinearModel:
    """One model fitted on every row given (sklearn fits the regression; the numbers are kept).
    `axes`: `principal_axes(table)` when the caller already has them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    dims = _usable_dims(dims, table)
    model = LinearModel(names=list(table.names), dims=dims, c=c)
    if dims:
        found = axes if axes is not None else principal_axes(table)
        assert found is not None  # dims > 0 only with embeddings on two or more rows (_usable_dims)
        mean, vt = found
        model.pca_mean, model.pca_components = mean.tolist(), vt[:dims].tolist()
    x = model.design(table)
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model.scaler_mean, model.scaler_scale = scaler.mean_.tolist(), scale.tolist()
    regression = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    regression.fit((x - scaler.mean_) / scale, good.astype(int))
    model.coef, model.intercept = regression.coef_[0].tolist(), float(regression.intercept_[0])
    return model


def _usable_dims(dims: int, table: FeatureTable) -> int:
    if table.embeddings is None:
        return 0
    return max(0, min(dims, len(table) - 1, table.embeddings.shape[1]))


def auc(good: np.ndarray, scores: np.ndarray) -> float | None:
    from synthfactory.grading.measures import roc_auc

    return roc_auc(good.astype(bool).tolist(), scores.tolist())


def _folds(good: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    minority = int(min(good.sum(), (~good).sum()))
    splits = min(k, minority)
    if splits < 2:
        raise ValueError(f"cross-validation needs at least 2 good and 2 bad rows (got {int(good.sum())} good, "
                         f"{int((~good).sum())} bad)")
    return list(StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed).split(np.zeros(len(good)), good))


def grid(table: FeatureTable) -> list[tuple[float, int]]:
    dims: tuple[int, ...] = GRID_DIMS if table.embeddings is not None else (0,)
    if not table.names:  # embeddings alone: some width of them, never nothing
        dims = tuple(d for d in dims if d) or (0,)
    return list(itertools.product(GRID_C, dims))


@one_blas_thread
def select(table: FeatureTable, good: np.ndarray, seed: int = SEED) -> tuple[float, int, float | None]:
    """(C, dims) with the best inner-CV AUC on these rows (ties: the simpler, earlier in the grid)."""
    best: tuple[float, int, float | None] = (GRID_C[0], 0, None)
    folds = [(table.take(train), good[train], table.take(test), test)
             for train, test in _folds(good, INNER_FOLDS, seed)]
    axes = [principal_axes(part) for part, _, _, _ in folds]
    for c, dims in grid(table):
        oof = np.zeros(len(good))
        for (part, labels, held, test), basis in zip(folds, axes, strict=True):
            oof[test] = fit(part, labels, c, dims, seed, basis).scores(held)
        value = auc(good, oof)
        if value is not None and (best[2] is None or value > best[2] + 1e-12):
            best = (c, dims, value)
    return best


@one_blas_thread
def cross_validate(table: FeatureTable, good: np.ndarray, threshold: float, folds: int = FOLDS,
                   seed: int = SEED) -> dict[str, Any]:
    """Nested stratified k-fold: per outer fold, choose (C, dims) on its training part, score its
    held-out part. AUC and precision/recall at `threshold` of those out-of-fold scores."""
    from synthfactory.grading.measures import at_threshold, threshold_for_precision

    good = good.astype(bool)
    oof = np.zeros(len(good))
    chosen = []
    for train, test in _folds(good, folds, seed):
        c, dims, _ = select(table.take(train), good[train], seed)
        oof[test] = fit(table.take(train), good[train], c, dims, seed).scores(table.take(test))
        chosen.append({"c": c, "dims": _usable_dims(dims, table.take(train))})
    scores = oof.tolist()
    labels = good.tolist()
    return {"measured_on": "out-of-fold scores of nested stratified k-fold cross-validation on the labelled rows",
            "rows": len(labels), "good": int(good.sum()), "base_rate": float(good.mean()),
            "folds": len(chosen), "seed": seed, "auc": auc(good, oof),
            "at_threshold": at_threshold(labels, scores, threshold),
            "at_0.5": at_threshold(labels, scores, 0.5),
            "threshold_for_precision_0.5": threshold_for_precision(labels, scores, 0.5),
            "chosen_per_fold": chosen,
            "oof_scores": [round(s, 6) for s in scores], "oof_good": labels}


@one_blas_thread
def train(table: FeatureTable, good: np.ndarray, threshold: float, seed: int = SEED
          ) -> tuple[LinearModel, dict[str, Any]]:
    """The model on every labelled row, with (C, dims) chosen by CV on them, and its nested CV numbers."""
    good = good.astype(bool)
    cv = cross_validate(table, good, threshold, seed=seed)
    c, dims, inner = select(table, good, seed)
    cv["final"] = {"c": c, "dims": _usable_dims(dims, table),
                   "selection_auc": inner, "selection_note": "inner CV AUC used to choose C and dims; optimistic, "
                   "not a quality figure (the nested `auc` is)"}
    model = fit(table, good, c, dims, seed)
    if not all(math.isfinite(v) for v in model.coef):
        raise ValueError("the learned judge's fit did not converge to finite coefficients")
    return model, cv
