"""Model collapse, measured: three arms of 5 recursive generations each, same model, same seeds,
same recipe (recipes/recursive.yaml) but for what the arm changes:

  (a) replace, guards off: generation k is seeded only from the rows generation k-1 published;
      no filters, no dedup, no diversity gates, every graded row passes (threshold 0).
  (b) replace, guards on: the same seeding, with the recipe's guards, judges and suite.
  (c) accumulate + real + guards on: the recipe as shipped: seeds from every published version
      (`from_versions: "@all"`) with 30% real paragraphs (corpus:python-docs) in the seeds and in
      the published rows, guards on.

Per generation, over the synthetic rows it published (real rows would prop the numbers up):
rows, distinct-2, embedding diversity, Vendi score, rare-word share, vocabulary coverage,
reference coverage and Fréchet drift vs the reference (quality/tails.py; the reference is the
recipe's `quality.reference`, the Python docs' prose, for every arm). Prints a table, writes
bench/collapse.png and bench/collapse.json.

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

ARMS = {"a": "replace, guards off", "b": "replace, guards on", "c": "accumulate + real + guards on"}
METRICS = ("rows", "distinct_2", "embedding_diversity", "vendi", "rare_word_share", "vocab_coverage",
           "reference_coverage", "drift_vs_reference")
HIGHER_IS_BETTER = METRICS[:-1]


def recipe(folder: Path, arm: str, generation: int, samples: int, store: Path, previous: int | None) -> Path:
    """`previous`: the newest version the arm published (replace seeds from it alone)."""
    data = yaml.safe_load((ROOT / "recipes" / "recursive.yaml").read_text())
    data["name"] = f"collapse-{arm}"
    data["batches"] = {"size": 8, "count": max(1, samples // 8)}
    data["seeds"]["path"] = str(ROOT / "recipes" / data["seeds"]["path"])
    data["generation"]["sampling"]["seed"] = generation  # the same per generation in every arm
    suite = json.loads((ROOT / "expectations" / "recursive.json").read_text())
    if arm in ("a", "b"):  # replace: only the previous generation's rows, no real data
        data["seeds"].pop("real")
        data["seeds"].pop("from_versions")
        if previous:
            data["seeds"] = {"from_version": f"{store / data['name']}@{previous}"}
    if arm == "a":
        data["quality"]["enabled"] = False
        data["grading"]["threshold"] = 0.0
        suite["expectations"] = [e for e in suite["expectations"]
                                 if not e["kwargs"].get("column", "").startswith(("batch_", "repeated", "score"))]
    (folder / f"suite-{arm}.json").write_text(json.dumps(suite))
    data["validation"]["suite"] = str(folder / f"suite-{arm}.json")
    path = folder / f"{arm}-{generation}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure(texts: list[str], ids: list[str], embedder, tails) -> dict[str, float | None]:
    from synthfactory.quality.embed import frechet_distance, mean_pairwise_cosine_distance, vendi_score
    from synthfactory.quality.text import distinct_n

    vectors = embedder.encode(ids, texts)
    return {"rows": len(texts), "distinct_2": distinct_n(texts, 2),
            "embedding_diversity": mean_pairwise_cosine_distance(vectors), "vendi": vendi_score(vectors),
            "rare_word_share": tails.rare_word_share(texts), "vocab_coverage": tails.vocab_coverage(texts),
            "reference_coverage": tails.reference_coverage(vectors),
            "drift_vs_reference": frechet_distance(vectors, tails.vectors)}


def plot(table: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(16, 7), dpi=100)
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        for arm, rows in table.items():
            ax.plot(range(1, len(rows) + 1), [r[metric] if r[metric] is not None else float("nan") for r in rows],
                    marker="o", label=f"({arm}) {ARMS[arm]}")
        ax.set(title=metric, xlabel="generation")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--arms", default="abc")
    args = parser.parse_args()

    from flows.factory import factory_flow
    from synthfactory import load_dataset_version
    from synthfactory.engines.pool import ensure_ray
    from synthfactory.errors import NothingToPublishError
    from synthfactory.inputs.corpus import corpus_file
    from synthfactory.inputs.readers import read_texts
    from synthfactory.quality.embed import Embedder
    from synthfactory.quality.tails import ReferenceTails

    ensure_ray()
    embedder = Embedder()
    tails = ReferenceTails(read_texts(corpus_file("python-docs", "bench"), "text"), embedder.encode)
    table: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    previous: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder, store = Path(tmp), Path(tmp) / "store"
        for arm in args.arms:
            for generation in range(1, args.generations + 1):
                path = recipe(folder, arm, generation, args.samples, store, previous.get(arm))
                try:
                    summary = factory_flow(recipe_path=str(path), store=str(store))
                except NothingToPublishError as exc:  # a generation that publishes nothing is a result too
                    table[arm].append({**dict.fromkeys(METRICS), "rows": 0, "real_published": 0,
                                       "seed_versions": None, "reasons": str(exc).split("Top reasons: ")[-1]})
                    print(f"({arm}) generation {generation}: nothing published: {exc}", flush=True)
                    continue
                previous[arm] = summary["version"]
                rows = [r for r in load_dataset_version(store / f"collapse-{arm}", version=summary["version"])
                        if r["version"] == summary["version"] and r["source"] != "real"]
                top = sorted((summary["reasons"] or {}).items(), key=lambda kv: -kv[1])[:3]
                result = {**measure([r["text"] for r in rows], [r["id"] for r in rows], embedder, tails),
                          "real_published": summary["real_published"], "seed_versions": summary["seed_versions"],
                          "seed_real_share": summary["seed_real_share"],
                          "max_depth": max((r["generation_depth"] for r in rows), default=0),
                          "reasons": ", ".join(f"{k} {v}" for k, v in top)}
                table[arm].append(result)
                print(f"({arm}) generation {generation}: " + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()), flush=True)
    print("\n| arm | generation | " + " | ".join(METRICS) + " | real rows | seeds from versions | top reasons |")
    print("| --- " * (len(METRICS) + 5) + "|")
    for arm, rows in table.items():
        for g, r in enumerate(rows, start=1):
            cells = [f"{r[m]:.3f}" if isinstance(r[m], float) else str(r[m]) for m in METRICS]
            print(f"| ({arm}) | {g} | " + " | ".join(cells) + f" | {r['real_published']} | "
                  f"{r['seed_versions'] or '-'} | {r['reasons']} |")
    print("\nGeneration 5 / generation 1 (higher is better except drift):")
    for arm, rows in table.items():
        first, last = rows[0], rows[-1]
        ratios = {m: (last[m] / first[m] if first[m] else None) for m in METRICS
                  if last[m] is not None and first[m] is not None}
        print(f"({arm}) " + ", ".join(f"{m} {v:.2f}" for m, v in ratios.items() if v is not None))
    (ROOT / "bench" / "collapse.json").write_text(json.dumps(table, indent=1))
    plot(table, ROOT / "bench" / "collapse.png")


if __name__ == "__main__":
    main()
