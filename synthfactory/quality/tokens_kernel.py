"""The compiled part of `synthfactory.quality.tokens` (numba; cached next to this file after the
first compile). `token_hash` is rensa 0.5's token hash (src/utils.rs: hash_bytes then
calculate_hash_fast); `tokens.token_hashes` checks it against rensa before trusting it."""

from __future__ import annotations

import numpy as np
from numba import njit

K = np.uint64(0xF1357AEA2E62A9C5)
S1 = np.uint64(0x243F6A8885A308D3)
S2 = np.uint64(0x13198A2E03707344)
Z = np.uint64(0xA4093822299F31D0)  # rensa's PREVENT_TRIVIAL_ZERO_COLLAPSE
M32, U8, U26, U32, U38 = np.uint64(0xFFFFFFFF), np.uint64(8), np.uint64(26), np.uint64(32), np.uint64(38)


@njit(inline="always")
def mul_fold(x, y):  # 64x64 -> 128-bit product, low half xor high half
    xl, xh, yl, yh = x & M32, x >> U32, y & M32, y >> U32
    ll, lh, hl = xl * yl, xl * yh, xh * yl
    mid = (ll >> U32) + (lh & M32) + (hl & M32)
    return ((ll & M32) | (mid << U32)) ^ (xh * yh + (lh >> U32) + (hl >> U32) + (mid >> U32))


@njit(inline="always")
def load(b, at, width):  # little-endian unsigned load of `width` bytes
    v = np.uint64(0)
    for i in range(width):
        v |= np.uint64(b[at + i]) << (U8 * np.uint64(i))
    return v


@njit(inline="always")
def token_hash(b, start, n):
    s0, s1 = S1, S2
    if n > 16:
        off = 0
        while off < n - 16:
            t = mul_fold(s0 ^ load(b, start + off, 8), Z ^ load(b, start + off + 8, 8))
            s0, s1 = s1, t
            off += 16
        s0 ^= load(b, start + n - 16, 8)
        s1 ^= load(b, start + n - 8, 8)
    elif n >= 8:
        s0 ^= load(b, start, 8)
        s1 ^= load(b, start + n - 8, 8)
    elif n >= 4:
        s0 ^= load(b, start, 4)
        s1 ^= load(b, start + n - 4, 4)
    elif n > 0:
        s0 ^= np.uint64(b[start])
        s1 ^= (np.uint64(b[start + n - 1]) << U8) | np.uint64(b[start + n // 2])
    c = (mul_fold(s0, s1) ^ np.uint64(n)) * K
    return (c << U26) | (c >> U38)


@njit(cache=True, nogil=True)
def kernel(buf, starts, ends):
    """Words are maximal runs of bytes other than ASCII whitespace (bytes.split's set)."""
    n_docs = starts.size
    upper = 0  # words, counted loosely (any byte <= 32 splits): never fewer than the real count
    prev = True
    for i in range(buf.size):
        sep = buf[i] <= 32
        if prev and not sep:
            upper += 1
        prev = sep
    hashes = np.empty(upper + n_docs, np.uint64)
    offsets = np.zeros(n_docs + 1, np.int64)
    norm = np.empty(buf.size + n_docs, np.uint8)
    norm_offsets = np.zeros(n_docs + 1, np.int64)
    t = 0
    q = 0
    for d in range(n_docs):
        i, end, first = starts[d], ends[d], t
        while i < end:
            c = buf[i]
            if c == 32 or (9 <= c <= 13):
                i += 1
                continue
            w = i
            i += 1
            while i < end:
                c = buf[i]
                if c == 32 or (9 <= c <= 13):
                    break
                i += 1
            hashes[t] = token_hash(buf, w, i - w)
            if t > first:
                norm[q] = 32
                q += 1
            t += 1
            for j in range(w, i):
                norm[q] = buf[j]
                q += 1
        if t == first:  # no words: the empty token, as word_bytes(t) or [b""]
            hashes[t] = token_hash(buf, 0, 0)
            t += 1
        offsets[d + 1] = t
        norm_offsets[d + 1] = q
    return hashes[:t], offsets, norm[:q], norm_offsets
