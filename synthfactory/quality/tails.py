"""Tail metrics: what model collapse takes first (Shumailov et al., Nature 2024: the tails of the
distribution disappear before the mean moves), measured against the recipe's real reference set.

- rare-word share: of the words a batch uses, the share that are not among the reference's
  COMMON_RANK most frequent words. A collapsing generator falls back on common words.
- vocabulary coverage: the share of the reference's vocabulary (words it uses at least twice)
  that the rows use. It grows with the number of rows: compare like-sized sets.
- reference coverage: the reference's embeddings are cut into CLUSTERS regions (k-means,
  all-MiniLM-L6-v2); each row falls into the region of its nearest centre, and the coverage is the
  regions reached over the regions the rows could reach (min(CLUSTERS, rows)), so 1.0 means every
  row opened a region of its own and a batch about one narrow corner scores near 1/rows.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthfactory.cache import cache_root
from synthfactory.quality.embed import MODEL_NAME, MODEL_PACKAGE
from synthfactory.storage import Location

COMMON_RANK = 1000  # words ranked below this in the reference are its head; the rest is the tail
CLUSTERS = 32
EMBED_SAMPLE = 512  # reference texts embedded (a fixed, evenly spaced sample): seconds, not minutes
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def kmeans(vectors: np.ndarray, k: int, iterations: int = 30, seed: int = 0) -> np.ndarray:
    """Centres of k clusters of unit vectors (k-means++ start, cosine assignment), deterministic."""
    rng = np.random.default_rng(seed)
    k = min(k, len(vectors))
    centres = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, k):
        distance = np.min(1.0 - vectors @ np.stack(centres).T, axis=1).clip(0.0)
        total = distance.sum()
        pick = rng.choice(len(vectors), p=distance / total) if total > 0 else rng.integers(len(vectors))
        centres.append(vectors[pick])
    centres_ = np.stack(centres)
    for _ in range(iterations):
        labels = np.argmax(vectors @ centres_.T, axis=1)
        moved = np.stack([vectors[labels == c].mean(0) if np.any(labels == c) else centres_[c] for c in range(k)])
        moved /= np.linalg.norm(moved, axis=1, keepdims=True).clip(1e-12)
        if np.allclose(moved, centres_, atol=1e-6):
            break
        centres_ = moved
    return centres_


# The reference sample's embeddings are the same for every run of a reference (same texts, same
# model): embedding 512 paragraphs costs a run 10-20 s of a core, so they are kept per process and
# in the user's cache folder (not the dataset's: they are the reference's, and hold only vectors).
_VECTORS: dict[str, np.ndarray] = {}


def _sample_key(sample: list[str]) -> str:
    import importlib.metadata

    try:
        model = importlib.metadata.version(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        model = "unknown"
    digest = hashlib.sha256(f"{MODEL_NAME} {model} {len(sample)}".encode())
    for text in sample:
        digest.update(b"\0" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def _cache_file(key: str) -> Path:
    """`{XDG_CACHE_HOME or ~/.cache}/synthfactory/reference-vectors/{key}.npy`."""
    return cache_root("reference-vectors", f"{key}.npy")


def _cached_vectors(key: str) -> np.ndarray | None:
    if key in _VECTORS:
        return _VECTORS[key]
    try:
        vectors = np.load(_cache_file(key), allow_pickle=False)
    except (OSError, ValueError):  # absent, unreadable or torn: embed again
        return None
    _VECTORS[key] = vectors
    return vectors


def _keep_vectors(key: str, vectors: np.ndarray) -> None:
    _VECTORS[key] = vectors
    path = _cache_file(key)
    data = io.BytesIO()
    np.save(data, vectors, allow_pickle=False)
    try:
        Location.of(path).write_bytes(data.getvalue())  # whole or nothing, no partial file left
    except OSError:  # a read-only HOME: the next run embeds again
        pass


class ReferenceTails:
    """The reference's word ranks and embedding regions, built once per run (thread-safe)."""

    def __init__(self, texts: list[str], encode: Callable[[list[str], list[str]], np.ndarray] | None = None) -> None:
        counts = Counter(w for t in texts for w in words(t))
        self.common = {w for w, _ in counts.most_common(COMMON_RANK)}
        self.vocabulary = {w for w, n in counts.items() if n >= 2}
        step = max(1, len(texts) // EMBED_SAMPLE)
        self.sample = texts[::step][:EMBED_SAMPLE]  # what is embedded: evenly spaced, fixed
        self._step = step
        self._encode = encode  # (ids, texts) -> unit vectors; None: no embedding metrics
        self._vectors: np.ndarray | None = None
        self._centres: np.ndarray | None = None
        self._lock = threading.Lock()

    def rare_word_share(self, texts: list[str]) -> float | None:
        tokens = [w for t in texts for w in words(t)]
        if not tokens or not self.common:
            return None
        return sum(w not in self.common for w in tokens) / len(tokens)

    def vocab_coverage(self, texts: list[str]) -> float | None:
        if not texts or not self.vocabulary:
            return None
        used = {w for t in texts for w in words(t)}
        return len(used & self.vocabulary) / len(self.vocabulary)

    @property
    def vectors(self) -> np.ndarray | None:
        """Embeddings of the reference sample (None without `encode`)."""
        self._embed()
        return self._vectors

    def _embed(self) -> None:
        with self._lock:
            if self._vectors is not None or self._encode is None or not self.sample:
                return
            key = _sample_key(self.sample)
            vectors = _cached_vectors(key)
            if vectors is None:
                vectors = self._encode([f"ref:{i * self._step}" for i in range(len(self.sample))], self.sample)
                _keep_vectors(key, vectors)
            self._vectors = vectors
            self._centres = kmeans(self._vectors, CLUSTERS)

    def regions(self, vectors: np.ndarray) -> np.ndarray:
        """The reference region (cluster) each vector falls into."""
        self._embed()
        assert self._centres is not None, "regions need the reference sample's embeddings (encode)"
        return np.argmax(vectors @ self._centres.T, axis=1)

    def reference_coverage(self, vectors: np.ndarray) -> float | None:
        self._embed()
        if self._centres is None or len(vectors) == 0:
            return None
        reached = len(set(self.regions(vectors).tolist()))
        return reached / min(len(self._centres), len(vectors))
