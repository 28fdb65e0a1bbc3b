"""The dedup tokens of many texts at once, compiled: word hashes for MinHash and normalised-text keys.

`word_bytes` (lower-cased UTF-8 words without ASCII punctuation) makes one Python object per word,
which was half the near-dup screen's time. Here one numba kernel walks all texts' bytes once and
writes, per text, the u64 hash rensa gives each word (so `RMinHash.digest_matrix_from_flat_token_hashes`
equals `RMinHash.from_token_sets(word_bytes(...))`) and the normalised text (words joined by one
space) whose xxh3 is the exact-dedup key. The kernel checks itself against rensa on first use;
should a rensa release hash tokens differently, `token_hashes` falls back to the Python path
(same results, slower) and logs why.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import xxhash
from rensa import RMinHash

from synthfactory.quality.text import _ASCII_PUNCT, word_bytes

log = logging.getLogger(__name__)


@dataclass
class TokenHashes:
    """Per text i: word hashes `hashes[offsets[i]:offsets[i+1]]` (never empty: a text without words
    hashes as the one empty token), its normalised text `normalised[bounds[i]:bounds[i+1]]` (words
    joined by one space) and `keys[i]`, the xxh3 of that."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len(texts) + 1
    normalised: bytes
    bounds: list[int]
    keys: list[int]

    def words(self, i: int) -> list[bytes]:
        """`word_bytes(texts[i]) or [b""]`, from the normalised text."""
        return self.normalised[self.bounds[i]:self.bounds[i + 1]].split(b" ")


def token_hashes_python(texts: list[str]) -> TokenHashes:
    """The reference path: `word_bytes` per text, hashed by rensa."""
    tokens = [word_bytes(t) or [b""] for t in texts]
    normalised = [b" ".join(tk) for tk in tokens]
    per_text = RMinHash.hash_token_sets(tokens)
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([len(h) for h in per_text], out=offsets[1:])
    hashes = np.fromiter((h for row in per_text for h in row), np.uint64, count=int(offsets[-1]))
    bounds = np.cumsum([0] + [len(n) for n in normalised]).tolist()
    return TokenHashes(hashes, offsets, b"".join(normalised), bounds,
                       [xxhash.xxh3_64_intdigest(n) for n in normalised])


_kernel = None  # the compiled kernel once it passed its self-check; False when it did not
_kernel_lock = threading.Lock()


def _run(kernel, texts: list[str]) -> TokenHashes:
    joined = "\0".join(texts)  # NUL apart: lower() treats it as the end of a text (final sigma)
    # each text's bytes in the lower-cased buffer: as many as its characters, unless it is not ASCII
    lengths = np.fromiter(map(len, texts), np.int64, count=len(texts))
    if not joined.isascii():
        for i in np.flatnonzero(~np.fromiter(map(str.isascii, texts), bool, count=len(texts))).tolist():
            lengths[i] = len(texts[i].lower().encode("utf-8"))
    lowered = joined.lower().encode("utf-8").translate(_ASCII_PUNCT)
    starts = np.zeros(len(texts), np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    hashes, offsets, norm, norm_offsets = kernel(np.frombuffer(lowered, np.uint8), starts, starts + lengths)
    normalised, bounds = norm.tobytes(), norm_offsets.tolist()
    keys = list(map(xxhash.xxh3_64_intdigest, map(normalised.__getitem__, map(slice, bounds, bounds[1:]))))
    return TokenHashes(hashes, offsets, normalised, bounds, keys)


# words of every length branch of the hash (0-3, 4-7, 8-16, > 16 bytes, several 16-byte rounds),
# non-ASCII (also lower-casing to ASCII or to more characters), whitespace of every kind, NUL inside a
# word, no words at all
_SELF_CHECK = ["", "  \t\n", "A b CD éàü x\x00y", "Hello, World! Ünïcödé ΣΑΣ İstanbul \u212a",
               "abcd abcdefg abcdefgh abcdefghijklmnop abcdefghijklmnopq " + "z" * 33 + " " + "y" * 70,
               "tab\tnew\nline\rvt\x0bff\x0c end.", "数据 合成 ..."]


def _checked_kernel():
    try:
        from synthfactory.quality.tokens_kernel import kernel  # compiled once, then cached
    except ImportError as exc:  # numba is a dependency; without it the screen is only slower
        log.warning("near-dup screen: numba unavailable (%s); using the Python tokenizer", exc)
        return False
    ours, ref = _run(kernel, _SELF_CHECK), token_hashes_python(_SELF_CHECK)
    if (np.array_equal(ours.hashes, ref.hashes) and np.array_equal(ours.offsets, ref.offsets)
            and ours.normalised == ref.normalised and ours.bounds == ref.bounds):
        return kernel
    log.warning("near-dup screen: the compiled tokenizer disagrees with this rensa's token hash; "
                "using the Python tokenizer (same results, slower)")
    return False


def compiled() -> bool:
    """Whether `token_hashes` runs the compiled kernel (checks it on the first call)."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            _kernel = _checked_kernel()
    return bool(_kernel)


def token_hashes(texts: list[str]) -> TokenHashes:
    """Word hashes and exact keys of `texts`, compiled when the kernel agrees with rensa."""
    compiled()
    if not texts:
        return TokenHashes(np.empty(0, np.uint64), np.zeros(1, np.int64), b"", [0], [])
    return _run(_kernel, texts) if _kernel else token_hashes_python(texts)
