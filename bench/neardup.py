"""Near-dup throughput: our NearDupIndex (compiled tokenizer, rensa MinHash + LSH, exact hashes)
on 100k synthetic docs on one core, and the ratio to datasketch doing the same work (MinHash over
the same word sets, MinHashLSH query then insert, same permutations and threshold).

Both run after a one-document warm-up (our first screen in a process loads the numba-compiled
tokenizer from its cache, ~0.5 s; the very first one on a machine compiles it, ~2 s); ours is the
median of three screens into fresh indexes.

    .venv/bin/python bench/neardup.py [--docs 100000] [--baseline-docs 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

from synthfactory.quality import tokens  # noqa: E402
from synthfactory.quality.dedup import NearDupIndex  # noqa: E402
from synthfactory.quality.text import words  # noqa: E402


def synthetic_docs(n: int, seed: int = 0) -> list[str]:
    """Sentences of 40-80 words from a Zipf-ish vocabulary; 10% are light edits of an earlier doc."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    docs: list[str] = []
    for _ in range(n):
        if docs and rng.random() < 0.1:
            base = rng.choice(docs).split()
            base[rng.randrange(len(base))] = rng.choice(vocab)
            docs.append(" ".join(base))
        else:
            docs.append(" ".join(rng.choices(vocab, weights, k=rng.randint(40, 80))) + ".")
    return docs


def ours(docs: list[str], threshold: float, num_perm: int, bands: int) -> tuple[float, int]:
    index = NearDupIndex(threshold, num_perm, bands)
    started = time.perf_counter()
    hits = index.screen(docs, [str(i) for i in range(len(docs))], [1] * len(docs))
    return time.perf_counter() - started, sum(h is not None for h in hits)


def datasketch_baseline(docs: list[str], threshold: float, num_perm: int) -> tuple[float, int]:
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=42)  # permutations made once, shared (the fast way)
    dups = 0
    for i, doc in enumerate(docs):
        m = MinHash(num_perm=num_perm, seed=42, permutations=template.permutations, scheme=template.scheme)
        m.update_batch([w.encode("utf-8") for w in set(words(doc))])
        if lsh.query(m):
            dups += 1
        else:
            lsh.insert(str(i), m)
    return time.perf_counter() - started, dups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--baseline-docs", type=int, default=10_000, help="datasketch is slow; rates are per doc")
    args = parser.parse_args()
    docs = synthetic_docs(args.docs)
    started = time.perf_counter()
    ours(docs[:1], 0.7, 128, 16)
    print(f"warm-up (load the compiled tokenizer): {time.perf_counter() - started:.2f}s, "
          f"compiled path {'on' if tokens.compiled() else 'OFF (Python tokenizer)'}")
    runs = sorted(ours(docs, 0.7, 128, 16) for _ in range(3))
    seconds, dups = runs[1]
    rate = args.docs / seconds
    print(f"synthfactory NearDupIndex: {args.docs} docs in {seconds:.2f}s = {rate:,.0f} docs/s "
          f"(one core, median of {', '.join(f'{s:.2f}' for s, _ in runs)}s), {dups} duplicates flagged "
          f"(target >= 100,000 docs/s)")
    base_docs = docs[: args.baseline_docs]
    datasketch_baseline(base_docs[:1], 0.7, 128)
    b_seconds, b_dups = datasketch_baseline(base_docs, 0.7, 128)
    b_rate = len(base_docs) / b_seconds
    o_seconds, o_dups = ours(base_docs, 0.7, 128, 16)
    print(f"datasketch MinHashLSH   : {len(base_docs)} docs in {b_seconds:.2f}s = {b_rate:,.0f} docs/s, "
          f"{b_dups} duplicates (ours on the same docs: {o_dups})")
    print(f"ratio ours / datasketch: {rate / b_rate:.1f}x")


if __name__ == "__main__":
    main()
