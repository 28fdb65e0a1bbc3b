"""Model collapse, measured: 5 recursive generations, each seeded from the rows the previous
generation published, with the quality guards off and on. Prints distinct-2 and embedding
diversity (mean pairwise cosine distance, all-MiniLM-L6-v2) of each generation's rows.

Guards off: no filters, no dedup, no diversity gate. Guards on: the recipe's defaults
(heuristics, exact/near dedup within the batch, the run and every earlier generation) plus a
suite that quarantines batches whose diversity falls below a floor.

    .venv/bin/python bench/collapse.py [--generations 5] [--samples 24]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key, value in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}.items():
    os.environ.setdefault(key, value)

FIRST = "Explain {{ topic }} to a curious high-school student in three or four sentences."
NEXT = "Write a new, short explanation for a high-school student of what this text is about:\n\n{{ text }}"


def recipe(folder: Path, arm: str, generation: int, samples: int, store: Path) -> Path:
    guards = arm == "on"
    suite = json.loads((ROOT / "expectations" / "quickstart.json").read_text())
    suite["expectations"] = [e for e in suite["expectations"]
                             if guards or not e["kwargs"].get("column", "").startswith(("batch_", "repeated"))]
    suite["expectations"] = [e for e in suite["expectations"] if e["type"] != "expect_column_mean_to_be_between"]
    (folder / f"suite-{arm}.json").write_text(json.dumps(suite))
    seeds = ({"path": str(ROOT / "recipes" / "seeds" / "topics.txt"), "field": "topic"} if generation == 1
             else {"from_version": f"{store / ('collapse-' + arm)}@{generation - 1}"})
    data = {
        "name": f"collapse-{arm}", "seeds": seeds,
        "generation": {"prompt_template": FIRST if generation == 1 else NEXT,
                       "sampling": {"temperature": 0.7, "max_tokens": 80, "seed": generation}},
        "grading": {"method": "logprobs", "threshold": 0.0,
                    "rubric": [{"name": "relevance", "description": "It explains the topic it was asked about."}]},
        "validation": {"suite": f"suite-{arm}.json"},
        "quality": {"enabled": guards, "filters": {"instruction_echo": True}},
        "batches": {"size": 8, "count": max(1, samples // 8)},
    }
    path = folder / f"{arm}-{generation}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--samples", type=int, default=24)
    args = parser.parse_args()

    from flows.factory import factory_flow
    from synthfactory import load_dataset_version
    from synthfactory.pool import ensure_ray
    from synthfactory.quality.embed import Embedder, mean_pairwise_cosine_distance
    from synthfactory.quality.text import distinct_n

    ensure_ray()
    embedder = Embedder()
    table: dict[str, list[tuple[int, float, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder, store = Path(tmp), Path(tmp) / "store"
        for arm in ("off", "on"):
            for generation in range(1, args.generations + 1):
                summary = factory_flow(recipe_path=str(recipe(folder, arm, generation, args.samples, store)),
                                       store=str(store))
                rows = [r for r in load_dataset_version(store / f"collapse-{arm}", version=summary["version"])
                        if r["version"] == summary["version"]]
                texts = [r["text"] for r in rows]
                vectors = embedder.encode([r["id"] for r in rows], texts)
                table[arm].append((len(rows), distinct_n(texts, 2), mean_pairwise_cosine_distance(vectors)))
                print(f"guards {arm:>3} generation {generation}: {len(rows):3d} rows, distinct-2 "
                      f"{table[arm][-1][1]:.3f}, embedding diversity {table[arm][-1][2]:.3f}", flush=True)
    print("\n| generation | guards off: rows | distinct-2 | embedding diversity | guards on: rows | distinct-2 | embedding diversity |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for g, (off, on) in enumerate(zip(table["off"], table["on"]), start=1):
        print(f"| {g} | {off[0]} | {off[1]:.3f} | {off[2]:.3f} | {on[0]} | {on[1]:.3f} | {on[2]:.3f} |")


if __name__ == "__main__":
    main()
