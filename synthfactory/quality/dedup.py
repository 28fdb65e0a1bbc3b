"""Exact and near-duplicate detection: normalised-text hashes and MinHash/LSH (rensa, Rust).

A dataset's index lives next to its table, one file per published version
(`{table}/_index/v{N}.pkl`), written in the same publish; adding a version never rescans the
table, and a query checks every version's file.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from rensa import RMinHash, RMinHashLSH

from synthfactory.quality.text import word_bytes

SEED = 42


def signatures(texts: list[str], num_perm: int) -> tuple[list[int], list[RMinHash]]:
    """Per text: the normalised-text hash (exact dedup) and a MinHash of its word set (Rust);
    each text is tokenised once."""
    tokens = [word_bytes(t) for t in texts]
    keys = [xxhash.xxh3_64_intdigest(b" ".join(tk)) for tk in tokens]
    return keys, RMinHash.from_token_sets([tk or [b""] for tk in tokens], num_perm, SEED)


@dataclass
class VersionIndex:
    """The LSH index of one published version, with row ids and generation depths by key."""

    version: int
    lsh: RMinHashLSH
    ids: list[str]
    depths: list[int]
    exact: dict[int, int] = field(default_factory=dict)


class NearDupIndex:
    """Rows seen so far (published versions, then this run); answers 'which row does this repeat?'."""

    def __init__(self, threshold: float = 0.7, num_perm: int = 128, bands: int = 16) -> None:
        self.threshold, self.num_perm, self.bands = threshold, num_perm, bands
        self.versions: list[VersionIndex] = []
        self._live = VersionIndex(0, RMinHashLSH(threshold, num_perm, bands), [], [])
        self._lock = threading.Lock()

    def match(self, key: int, minhash: RMinHash) -> tuple[str, str, int] | None:
        """(kind, matched row id, its depth) for an exact or near duplicate, else None."""
        for index in [*self.versions, self._live]:
            if key in index.exact:
                k = index.exact[key]
                return "exact_duplicate", index.ids[k], index.depths[k]
            candidates = index.lsh.query(minhash)
            if candidates:
                k = min(candidates)
                return "near_duplicate", index.ids[k], index.depths[k]
        return None

    def add(self, key: int, minhash: RMinHash, row_id: str, depth: int) -> None:
        live = self._live
        position = len(live.ids)
        live.ids.append(row_id)
        live.depths.append(depth)
        live.exact.setdefault(key, position)
        live.lsh.insert(position, minhash)

    def screen(self, texts: list[str], ids: list[str], depths: list[int], *, keep: bool = True
               ) -> list[tuple[str, str, int] | None]:
        """Check texts in order, atomically; unless `keep` is False, add the ones that are new."""
        keys, hashes = signatures(texts, self.num_perm)
        found = []
        with self._lock:
            for key, mh, row_id, depth in zip(keys, hashes, ids, depths, strict=True):
                hit = self.match(key, mh)
                found.append(hit)
                if hit is None and keep:
                    self.add(key, mh, row_id, depth)
        return found

    def fork(self) -> "NearDupIndex":
        """Same published versions, empty live part: a private index for one batch."""
        other = NearDupIndex(self.threshold, self.num_perm, self.bands)
        other.versions = self.versions
        return other

    # persistence: one file per version, next to the table
    @classmethod
    def load(cls, folder: Path, threshold: float = 0.7, num_perm: int = 128, bands: int = 16) -> "NearDupIndex":
        index = cls(threshold, num_perm, bands)
        if folder.is_dir():
            for path in sorted(folder.glob("v*.pkl"), key=lambda p: int(p.stem[1:])):
                with open(path, "rb") as handle:
                    stored: VersionIndex = pickle.load(handle)
                if stored.lsh.get_num_perm() == num_perm:
                    index.versions.append(stored)
        return index


def write_version_index(folder: Path, version: int, texts: list[str], ids: list[str], depths: list[int],
                        threshold: float = 0.7, num_perm: int = 128, bands: int = 16) -> Path:
    """Index of one version's rows; written before the commit that makes the version visible."""
    folder.mkdir(parents=True, exist_ok=True)
    lsh = RMinHashLSH(threshold, num_perm, bands)
    exact: dict[int, int] = {}
    keys, hashes = signatures(texts, num_perm)
    for position, (key, mh) in enumerate(zip(keys, hashes)):
        lsh.insert(position, mh)
        exact.setdefault(key, position)
    path = folder / f"v{version}.pkl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(VersionIndex(version, lsh, list(ids), list(depths), exact), handle)
    tmp.replace(path)
    return path
