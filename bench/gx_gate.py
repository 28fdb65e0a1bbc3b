"""Validation gate throughput: rows/s through the real GX suite (expectations/quickstart.json,
with the quality columns it gates on) for one large batch. Target >= 1M rows/s.

    .venv/bin/python bench/gx_gate.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthfactory.quality.validation import SuiteGate  # noqa: E402


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = rows
    return pd.DataFrame({
        "id": np.char.add("r", np.arange(n).astype(str)), "seed_id": "s", "generator_model": "m",
        "judge_model": "m", "scores": "{}", "created_at": pd.Timestamp.now(tz="UTC"), "run_id": "run",
        "text": np.where(rng.random(n) < 0.5, "A short explanation of tides and the moon.",
                         "Bees dance to show where flowers are, the angle giving direction."),
        "score": rng.uniform(0.4, 1.0, n), "source": "synthetic", "generation_depth": 1,
        "repeated_ngram_ratio": rng.uniform(0, 0.2, n), "batch_near_dup_rate": 0.01, "batch_distinct_2": 0.8,
        "batch_embedding_diversity": 0.7,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    gate = SuiteGate(ROOT / "expectations" / "quickstart.json")
    data = frame(args.rows)
    gate.validate(data.head(1000).to_dict("records"))  # warm-up
    started = time.perf_counter()
    outcome = gate.validate_frame(data)
    seconds = time.perf_counter() - started
    print(f"GX suite '{gate.suite.name}' ({len(gate.suite.expectations)} expectations) on {args.rows:,} rows: "
          f"{seconds:.2f}s = {args.rows / seconds:,.0f} rows/s, success={outcome['success']}  "
          "(target >= 1,000,000 rows/s)")


if __name__ == "__main__":
    main()
