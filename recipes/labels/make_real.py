"""Make the labelled set of real outputs: what the bundled model writes for the quickstart prompt
on 360 topics the project never used (`real_topics.txt`), then the labelled files.

    python recipes/labels/make_real.py generate [--out FILE]   # one output per topic (heavy: ~10 min)
    python recipes/labels/make_real.py merge [--real DIR]      # labels_A + labels_B -> the two JSONL files

`generate` goes through the factory's own code, not a hand-rolled llama-cpp call, so the rows are
what a user of the quickstart gets: the quickstart recipe is loaded as is (system prompt, prompt
template, sampling: temperature 0.7, top_p 0.95, max_tokens 96, seed 42), `plan_run` renders the
prompts and gives every row its sampling seed (as version 1 of a dataset of these topics would),
the `text` method builds the requests, and `LlamaCppEngine` (the factory's engine class, with the
recipe's engine options) answers them. It runs the engine in-process instead of in Ray actors
and skips the screens and judges: every output is kept, whether a run would publish or quarantine
it. Reproducible on one machine: the same seeds give the same text.

Split by topic: topic i (file order) is `test` when i % 3 == 0 (held out: never used to train or
tune anything), `dev` otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TOPICS = HERE / "real_topics.txt"
RECIPE = ROOT / "recipes" / "quickstart.yaml"
REAL_DIR = Path(__file__).resolve().parent / "real"  # the shuffled outputs and each labeller's raw labels (merge reads)
OVERLAP = 25  # rows each labeller labels from the other's half: 2 x 25 = 50 rows with two labels


def read_topics(path: Path = TOPICS) -> list[dict[str, str]]:
    """`topic<TAB>domain` lines, in file order, each with its id and split."""
    rows = []
    for index, line in enumerate(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()):
        topic, domain = line.split("\t")
        rows.append({"id": f"real-{index:03d}", "topic": topic, "domain": domain,
                     "split": "test" if index % 3 == 0 else "dev"})
    return rows


def generate(out: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """One output of the bundled model per topic, through the factory's plan, method and engine;
    `limit`: only the first N topics of the plan (a quick reproducibility check)."""
    from synthfactory.engines.llamacpp import LlamaCppEngine
    from synthfactory.inputs.seeds import SeedRow, SeedSet
    from synthfactory.methods import method_for
    from synthfactory.methods.base import Draft, Fail, Row
    from synthfactory.recipe.load import load_recipe
    from synthfactory.run.plan import plan_run

    topics = read_topics()
    loaded = load_recipe(RECIPE)
    seeds = SeedSet(rows=[SeedRow(seed_id=t["id"], fields={"topic": t["topic"]}, location=f"{TOPICS.name}:{i + 1}")
                          for i, t in enumerate(topics)])
    plan = plan_run(loaded, seeds, version=1)
    if plan.seeds_quarantined:
        sys.exit(f"seeds quarantined: {[q.reason for q in plan.seeds_quarantined]}")
    method = method_for(loaded.recipe)
    engine = LlamaCppEngine(plan.generator)  # the spec a run of the recipe loads (logprobs on: its panel reads them)
    by_id = {t["id"]: t for t in topics}
    rows = []
    try:
        items = [item for batch in plan.batches for item in batch.items][:limit]
        for item in items:
            draft = Draft(item=item)
            requests = method.requests(draft)
            results = engine.chat(requests)
            outcome = method.parse(draft, results)
            text = outcome.fields["text"] if isinstance(outcome, (Row, Fail)) and "text" in outcome.fields \
                else results[0].text.strip()
            topic = by_id[item.seed.seed_id]
            rows.append({**{k: topic[k] for k in ("id", "topic", "domain")}, "prompt": item.prompt,
                         "text": text, "split": topic["split"], "seed": requests[0].seed,
                         "finish_reason": results[0].finish_reason})
            print(f"{len(rows)}/{len(topics)} {topic['id']} {results[0].finish_reason}", flush=True)
    finally:
        engine.close()
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for row in shuffled:
            handle.write(json.dumps({k: row[k] for k in ("id", "topic", "domain", "prompt", "text", "split")},
                                    ensure_ascii=False) + "\n")
    full = out.with_name("outputs_full.jsonl")  # with each row's sampling seed and finish reason
    full.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _labels(path: Path) -> dict[str, dict[str, Any]]:
    """id -> the labeller's last line for it (a corrected label replaces the first one)."""
    return {row["id"]: row for row in _read_jsonl(path)}


def merge(real: Path) -> dict[str, Any]:
    """The labelled files: each row takes its primary labeller's label (A for rows [0, h) of
    outputs.jsonl, B for [h, n)); the other labeller's label on the 50 overlap rows is kept as
    `second_label`. Returns the counts, kappa and disagreements the README reports."""
    from synthfactory.grading.calibration import cohen_kappa

    outputs = _read_jsonl(real / "outputs.jsonl")
    a, b = _labels(real / "labels_A.jsonl"), _labels(real / "labels_B.jsonl")
    n = len(outputs)
    h = n // 2
    overlap = [r["id"] for r in outputs[:OVERLAP]] + [r["id"] for r in outputs[h:h + OVERLAP]]
    merged: dict[str, list[dict[str, Any]]] = {"dev": [], "test": []}
    missing = []
    for position, row in enumerate(outputs):
        primary, other, who = (a, b, "A") if position < h else (b, a, "B")
        given = primary.get(row["id"])
        if given is None or given["label"] not in ("good", "bad"):
            missing.append((row["id"], who, None if given is None else given["label"]))
            continue
        label = given["label"]
        out = {"id": row["id"], "prompt": row["prompt"], "text": row["text"], "label": label,
               "topic": row["topic"], "domain": row["domain"], "labeller": who, "note": given.get("note") or "",
               "origin": "real", "kind": f"real_{label}"}
        if row["id"] in overlap and row["id"] in other:
            out["second_label"] = other[row["id"]]["label"]
            out["second_note"] = other[row["id"]].get("note") or ""
        merged[row["split"]].append(out)
    for split, rows in merged.items():
        rows.sort(key=lambda r: r["id"])
        (HERE / f"quickstart_real_{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    pairs = [(i, a[i], b[i]) for i in overlap if i in a and i in b
             and a[i]["label"] in ("good", "bad") and b[i]["label"] in ("good", "bad")]
    kappa = cohen_kappa([x["label"] == "good" for _, x, _ in pairs], [y["label"] == "good" for _, _, y in pairs])
    topic_of = {r["id"]: r["topic"] for r in outputs}
    return {
        "rows": n, "missing": missing,
        "splits": {s: {"rows": len(rs), "good": sum(r["label"] == "good" for r in rs),
                       "bad": sum(r["label"] == "bad" for r in rs),
                       "base_rate": round(sum(r["label"] == "good" for r in rs) / len(rs), 3) if rs else None}
                   for s, rs in merged.items()},
        "overlap_pairs": len(pairs),
        "agreement": round(sum(x["label"] == y["label"] for _, x, y in pairs) / len(pairs), 3) if pairs else None,
        "kappa": None if kappa is None else round(kappa, 3),
        "disagreements": [{"id": i, "topic": topic_of[i], "A": x["label"], "A_note": x.get("note") or "",
                           "B": y["label"], "B_note": y.get("note") or ""}
                          for i, x, y in pairs if x["label"] != y["label"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="one output of the bundled model per topic (heavy)")
    gen.add_argument("--out", type=Path, default=REAL_DIR / "outputs.jsonl")
    gen.add_argument("--limit", type=int, default=None, help="only the first N topics (a reproducibility check)")
    mer = sub.add_parser("merge", help="labels_A + labels_B -> quickstart_real_{dev,test}.jsonl")
    mer.add_argument("--real", type=Path, default=REAL_DIR)
    args = parser.parse_args()
    if args.command == "generate":
        rows = generate(args.out, args.limit)
        print(f"{len(rows)} outputs -> {args.out}")
    else:
        print(json.dumps(merge(args.real), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
