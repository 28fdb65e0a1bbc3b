"""Exact and near-duplicate detection: normalised-text hashes and MinHash/LSH (rensa, Rust).

A dataset's index lives next to its table, one file per published version
(`{table}/_index/v{N}.pkl`), written in the same publish; adding a version never rescans the
table, and a query checks every version's file. Through `synthfactory.storage`, so a dataset on
an object store is deduplicated against every version, whichever machine published it.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rensa import RMinHash, RMinHashDigestMatrix, RMinHashLSH

from synthfactory.quality.tokens import TokenHashes, token_hashes
from synthfactory.storage import Location

SEED = 42
# Duplicate flags come per chunk: a text is suspect when it collides with an earlier chunk's text
# or with any text of its own chunk, so chunking spares most first occurrences a lookup
CHUNK = 1024
_versions_lock = threading.Lock()


@dataclass
class Signatures:
    """Of many texts: exact keys (xxh3 of the normalised text) and MinHash digest matrices of their
    word sets, one per chunk of CHUNK texts, all from one compiled pass (`tokens.token_hashes`)."""

    tokens: TokenHashes
    chunks: list[tuple[int, RMinHashDigestMatrix]]  # (first text's position, its chunk's matrix)
    num_perm: int

    @classmethod
    def of(cls, texts: list[str], num_perm: int) -> Signatures:
        tokens = token_hashes(texts)
        chunks = []
        for start in range(0, len(texts), CHUNK):
            first, last = tokens.offsets[start], tokens.offsets[min(start + CHUNK, len(texts))]
            matrix = RMinHash.digest_matrix_from_flat_token_hashes(
                tokens.hashes[first:last], tokens.offsets[start:start + CHUNK + 1] - first, num_perm, SEED)
            chunks.append((start, matrix))
        return cls(tokens, chunks, num_perm)

    @property
    def keys(self) -> list[int]:
        return self.tokens.keys

    def minhashes(self, rows: list[int]) -> list[RMinHash]:
        """RMinHash objects equal to these rows of the matrix, for the few rows that need candidate
        lookups (rensa queries take objects)."""
        return RMinHash.from_token_sets([self.tokens.words(i) for i in rows], self.num_perm, SEED)


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

    def _match(self, key: int, minhash: RMinHash, before: int | None) -> tuple[str, str, int] | None:
        """(kind, matched row id, its depth) for an exact or near duplicate, else None; in the live
        part only rows before position `before` count (None: all)."""
        for index in [*self.versions, self._live]:
            limit = before if index is self._live else None
            if key in index.exact:
                k = index.exact[key]
                return "exact_duplicate", index.ids[k], index.depths[k]
            candidates = [k for k in index.lsh.query(minhash) if limit is None or k < limit]
            if candidates:
                k = min(candidates)
                return "near_duplicate", index.ids[k], index.depths[k]
        return None

    def screen(self, texts: list[str], ids: list[str], depths: list[int], *, keep: bool = True
               ) -> list[tuple[str, str, int] | None]:
        """Check texts in order, atomically; unless `keep` is False, add the ones that are new.

        The answers of checking and adding one text at a time, in bulk: digest matrices for all texts;
        LSH band collisions with the published versions, the live rows and the texts before it (or
        in its chunk) mark a text suspect, and only suspects are resolved one by one, in order. A
        text that collides with nothing before it is new."""
        if len(texts) != len(ids) or len(ids) != len(depths):
            raise ValueError("screen: texts, ids and depths differ in length")
        if not texts:
            return []
        sig = Signatures.of(texts, self.num_perm)
        n, live = len(texts), self._live
        with self._lock:
            base = len(live.ids)
            if keep:  # every text goes in at position base + i; the duplicates come out again below
                live.ids.extend(ids)
                live.depths.extend(depths)
            suspect = np.zeros(n, bool)
            for start, matrix in sig.chunks:
                flags = suspect[start:start + matrix.len()]
                with _versions_lock:  # version indexes are shared by forks; one_shot borrows mutably
                    for index in self.versions:
                        if index.ids:
                            flags |= np.asarray(index.lsh.query_duplicate_flags_matrix_one_shot(matrix), bool)
                if keep:
                    flags |= np.asarray(live.lsh.insert_matrix_and_query_duplicate_flags(matrix, base + start), bool)
                elif live.ids:
                    flags |= np.asarray(live.lsh.query_duplicate_flags_matrix_one_shot(matrix), bool)
            if keep:  # a text that collides with no earlier one has a new key (equal texts, equal digests)
                fresh = np.flatnonzero(~suspect).tolist()
                live.exact.update(zip(map(sig.keys.__getitem__, fresh), (base + i for i in fresh), strict=True))
            found: list[tuple[str, str, int] | None] = [None] * n
            rows = np.flatnonzero(suspect).tolist()
            for i, minhash in zip(rows, sig.minhashes(rows), strict=True):
                found[i] = hit = self._match(sig.keys[i], minhash, base + i if keep else None)
                if keep and hit is None:
                    live.exact.setdefault(sig.keys[i], base + i)
                elif keep:
                    live.lsh.remove(base + i)
        return found

    def fork(self) -> NearDupIndex:
        """Same published versions, empty live part: a private index for one batch."""
        other = NearDupIndex(self.threshold, self.num_perm, self.bands)
        other.versions = self.versions
        return other

    # persistence: one file per version, next to the table
    @classmethod
    def load(cls, folder: Location | Path, threshold: float = 0.7, num_perm: int = 128, bands: int = 16
             ) -> NearDupIndex:
        index = cls(threshold, num_perm, bands)
        files = [f for f in Location.of(folder).glob("v*.pkl") if f.name[1:-4].isdigit()]
        for file in sorted(files, key=lambda f: int(f.name[1:-4])):
            stored: VersionIndex = pickle.loads(file.read_bytes())  # our own file, written by a publish
            if stored.lsh.get_num_perm() == num_perm:
                index.versions.append(stored)
        return index


def write_version_index(folder: Location | Path, version: int, texts: list[str], ids: list[str], depths: list[int],
                        threshold: float = 0.7, num_perm: int = 128, bands: int = 16) -> Location:
    """Index of one version's rows; written (whole) before the commit that makes the version visible."""
    lsh = RMinHashLSH(threshold, num_perm, bands)
    sig = Signatures.of(texts, num_perm)
    for start, matrix in sig.chunks:
        lsh.insert_matrix(matrix, start)
    exact: dict[int, int] = {}
    for position, key in enumerate(sig.keys):
        exact.setdefault(key, position)
    data = pickle.dumps(VersionIndex(version, lsh, list(ids), list(depths), exact))
    return Location.of(folder).child(f"v{version}.pkl").write_bytes(data)
