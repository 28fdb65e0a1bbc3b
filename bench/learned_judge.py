"""The learned judge measured by cross-validation on labelled rows, per feature group (an ablation).

The quickstart panel's judges (relevance, form, smollm2 logprobs) grade every labelled row once,
on one in-process llama.cpp engine (their scores are cached in --cache, keyed by prompt and text,
so the ablations and a later test run do not grade again). Then, per feature group (embeddings
only, signals only, judges only, all), nested stratified 5-fold cross-validation on the --labels
rows gives ROC-AUC and precision/recall (the quality figures), beside the quickstart panel's own
score on the same rows. Nothing is fitted or tuned on --test: with it, the configuration with the
best dev CV AUC is trained on all of --labels, its threshold is the lowest one whose dev
out-of-fold precision reaches 0.5, and the --test rows are scored once.

Across labellers (issue 35: a judge's number must survive a change of labeller): for that
configuration, each labeller's rows are scored by a model trained only on the other labeller's dev
rows, both ways, with bootstrap 95% intervals (`grading.cross_labeller`, what a learned judge stores
and its card cites): on the dev rows alone, and with --test on each labeller's dev and test rows
(trained on dev rows only, as everything here), beside the same-labeller figures.

    .venv/bin/python bench/learned_judge.py --labels recipes/labels/quickstart_real_dev.jsonl \\
        [--test recipes/labels/quickstart_real_test.jsonl] [--pregrade FILE.jsonl] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from synthfactory.engines.base import EngineSpec  # noqa: E402
from synthfactory.grading import learned_model as lm  # noqa: E402
from synthfactory.grading.cross_labeller import cross_labeller  # noqa: E402
from synthfactory.grading.cross_labeller import lines as cross_lines  # noqa: E402
from synthfactory.grading.learned import build_features  # noqa: E402
from synthfactory.grading.llm import JudgeScore  # noqa: E402
from synthfactory.grading.measures import at_threshold, auc_interval, roc_auc, threshold_for_precision  # noqa: E402
from synthfactory.grading.panel import Panel  # noqa: E402
from synthfactory.model.lineage import stable_hash  # noqa: E402
from synthfactory.recipe import load_recipe  # noqa: E402

ABLATIONS = {"embeddings": ("embeddings",), "signals": ("signals",), "judges": ("judges",),
             "signals+judges": ("signals", "judges"), "all": ("embeddings", "signals", "judges")}
TARGET_PRECISION = 0.5


def _read(path: Path) -> list[dict[str, Any]]:
    from synthfactory.grading.labelsets import load_label_source

    return load_label_source(path).rows


def grade_all(pairs: list[tuple[str, str]], cache_path: Path, threads: int) -> dict[str, dict[str, Any]]:
    """{key: {judge: {score, normalised}}} for every pair, grading only those not cached yet."""
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    todo = list(dict.fromkeys(p for p in pairs if stable_hash(*p) not in cache))
    if todo:
        grading = load_recipe(ROOT / "recipes" / "quickstart.yaml").recipe.grading
        from synthfactory.engines.llamacpp import LlamaCppEngine

        engine = LlamaCppEngine(EngineSpec("llamacpp", "smollm2-135m-instruct", {"threads": threads},
                                           logprobs=True))
        panel = Panel(grading)
        chats = [engine.chat if c.method in ("json", "logprobs") else None for c in grading.panel]
        started = time.perf_counter()
        for start in range(0, len(todo), 32):
            part = todo[start:start + 32]
            scores = panel.grade_others(part, chats)
            for k, pair in enumerate(part):
                cache[stable_hash(*pair)] = {name: None if s[k] is None else
                                             {"score": s[k].score, "normalised": s[k].normalised}
                                             for name, s in scores.items()}
            cache_path.write_text(json.dumps(cache), encoding="utf-8")
            print(f"graded {start + len(part)}/{len(todo)} in {time.perf_counter() - started:.0f}s", flush=True)
    return cache


def generator_logprobs(pairs: list[tuple[str, str]], cache_path: Path, system: str) -> dict[str, list[float]]:
    """The learned judge's `generator` features (GeneratorScorer: the response's token log-probabilities
    under SmolLM2-135M with the quickstart's system prompt, [mean, 10th percentile]) per pair, cached."""
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    todo = list(dict.fromkeys(p for p in pairs if stable_hash(*p) not in cache))
    if todo:
        from synthfactory.grading.learned import GeneratorScorer

        scorer = GeneratorScorer("smollm2-135m-instruct", system)
        started = time.perf_counter()
        for k, (prompt, text) in enumerate(todo):
            cache[stable_hash(prompt, text)] = scorer.features(prompt, text)
            if k % 50 == 49:
                print(f"generator logprobs {k + 1}/{len(todo)} in {time.perf_counter() - started:.0f}s", flush=True)
        cache_path.write_text(json.dumps(cache), encoding="utf-8")
    return cache


def with_generator(table: lm.FeatureTable, rows: list[dict[str, Any]], keep: list[int],
                   logprobs: dict[str, list[float]], alone: bool = False) -> lm.FeatureTable:
    """The table with the generator's two log-probability features added (or them alone)."""
    extra = np.array([logprobs[key(rows[k])] for k in keep])
    names = ["generator.mean_logprob", "generator.p10_logprob"]
    if alone:
        return lm.FeatureTable(names, extra, None)
    return lm.FeatureTable(table.names + names, np.hstack([table.scalars, extra]), table.embeddings)


def key(row: dict[str, Any]) -> str:
    return stable_hash(row["prompt"], row["text"])


def features(rows: list[dict[str, Any]], cache: dict[str, Any], groups: tuple[str, ...],
             logprobs: dict[str, list[float]] | None = None) -> tuple[lm.FeatureTable, np.ndarray, list[int]]:
    """The feature table of the rows every judge could read, their labels, and which rows those are;
    the `generator` group reads `logprobs` (the learned judge's GeneratorScorer values)."""
    keep = [k for k, r in enumerate(rows) if all(v is not None for v in cache[key(r)].values())]
    pairs = [(rows[k]["prompt"], rows[k]["text"]) for k in keep]
    entries = [cache[stable_hash(*p)] for p in pairs]
    others = {name: [JudgeScore(raw={}, normalised=e[name]["normalised"], score=e[name]["score"]) for e in entries]
              for name in sorted(entries[0])}
    from synthfactory.quality.embed import shared_embedder

    plain = tuple(g for g in groups if g != "generator")
    table = build_features(pairs, others, plain, shared_embedder) if plain else lm.FeatureTable([], np.zeros((0, 0)))
    if "generator" in groups:
        table = with_generator(table, rows, keep, logprobs or {}, alone=not plain)
    return table, np.array([bool(rows[k]["good"]) for k in keep]), keep


def panel_score(entry: dict[str, Any]) -> float:
    """The quickstart panel's row score: mean of its voting judges (relevance, form; smollm2 weight 0)."""
    return (entry["relevance"]["score"] + entry["form"]["score"]) / 2


def panel_section(rows: list[dict[str, Any]], cache: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The quickstart panel's own score on the rows (no training): the number to beat."""
    good = [bool(r["good"]) for r in rows]
    scores = [panel_score(cache[key(r)]) for r in rows]
    return {"rows": len(rows), "good": sum(good), "base_rate": sum(good) / len(rows), "auc": roc_auc(good, scores),
            "auc_interval": auc_interval(good, scores), "at_threshold": at_threshold(good, scores, threshold),
            "per_judge_auc": {n: roc_auc(good, [cache[key(r)][n]["score"] for r in rows])
                              for n in ("relevance", "form", "smollm2")}}


def ablation(dev: list[dict[str, Any]], cache: dict[str, Any], groups: tuple[str, ...],
             logprobs: dict[str, list[float]]) -> dict[str, Any]:
    """Nested CV of one feature configuration on the dev rows."""
    table, good, _ = features(dev, cache, groups, logprobs)
    cv = lm.cross_validate(table, good, threshold=0.5)
    oof = cv.pop("oof_scores")
    cv.pop("oof_good")
    cv["auc_interval"] = auc_interval(good.tolist(), oof)
    cv["threshold_for_precision_0.5_on_oof"] = threshold_for_precision(good.tolist(), oof, TARGET_PRECISION)
    return cv


def held_out(dev: list[dict[str, Any]], test: list[dict[str, Any]], cache: dict[str, Any], name: str,
             groups: tuple[str, ...], logprobs: dict[str, list[float]], threshold: float,
             panel_threshold: float) -> dict[str, Any]:
    """Train on all dev rows, score the test rows once."""
    table, good, _ = features(dev, cache, groups, logprobs)
    held, held_good, held_keep = features(test, cache, groups, logprobs)
    model, _ = lm.train(table, good, threshold=0.5)
    labels, scores = held_good.tolist(), model.scores(held).tolist()
    panel = [panel_score(cache[key(test[k])]) for k in held_keep]
    return {"configuration": name, "groups": list(groups), "rows": len(held_keep), "good": int(held_good.sum()),
            "base_rate": float(held_good.mean()), "auc": roc_auc(labels, scores),
            "auc_interval": auc_interval(labels, scores), "threshold_from_dev": threshold,
            "at_threshold": at_threshold(labels, scores, threshold), "panel_auc": roc_auc(labels, panel),
            "panel_auc_interval": auc_interval(labels, panel),
            "panel_at_threshold": at_threshold(labels, panel, panel_threshold)}


def across_labellers(dev: list[dict[str, Any]], test: list[dict[str, Any]], cache: dict[str, Any],
                     groups: tuple[str, ...], logprobs: dict[str, list[float]], threshold: float) -> dict[str, Any]:
    """The configuration trained on one labeller's dev rows, scored on the other's: on dev alone (the
    learned judge's own `cross_labeller`), and on dev + test (test rows scored, never trained on)."""
    table, good, keep = features(dev, cache, groups, logprobs)
    out: dict[str, Any] = {"dev": cross_labeller(table, good, [dev[k].get("labeller") for k in keep], threshold)}
    if test:
        held, held_good, held_keep = features(test, cache, groups, logprobs)
        both = lm.FeatureTable(table.names, np.vstack([table.scalars, held.scalars]),
                               None if table.embeddings is None else np.vstack([table.embeddings, held.embeddings]))
        labellers = [dev[k].get("labeller") for k in keep] + [test[k].get("labeller") for k in held_keep]
        trainable = np.array([True] * len(keep) + [False] * len(held_keep))
        out["dev+test"] = cross_labeller(both, np.concatenate([good, held_good]), labellers, threshold, trainable)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="dev rows: CV only")
    parser.add_argument("--test", type=Path, help="held-out rows, scored once by the dev-trained model")
    parser.add_argument("--pregrade", type=Path, help="a JSONL of prompt/text rows to grade into the cache first")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/learned_judge_scores.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--generator-logprob", action="store_true",
                        help="also measure the generator's token log-probabilities of the response as features")
    args = parser.parse_args()
    extra = []
    if args.pregrade:
        extra = [(r["prompt"], r["text"]) for r in map(json.loads, args.pregrade.read_text().splitlines())]
    dev = _read(args.labels)
    test = _read(args.test) if args.test else []
    cache = grade_all(extra + [(r["prompt"], r["text"]) for r in dev + test], args.cache, args.threads)
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").recipe
    readable = [r for r in dev if all(v is not None for v in cache[key(r)].values())]
    panel = panel_section(readable, cache, recipe.grading.pass_mark)
    out: dict[str, Any] = {"labels": str(args.labels), "measured_on": "nested stratified 5-fold CV on the labels file",
                           "panel": panel, "ablations": {}}
    print(f"dev: {len(dev)} rows, {len(readable)} readable by every judge, {panel['good']} good "
          f"(base rate {panel['base_rate']:.3f})")
    print(f"quickstart panel score: AUC {panel['auc']:.3f} (95% CI {_ci(panel['auc_interval'])}); per judge "
          + ", ".join(f"{n} {v:.3f}" for n, v in panel["per_judge_auc"].items()))
    ablations = dict(ABLATIONS)
    logprobs: dict[str, list[float]] = {}
    if args.generator_logprob:
        logprobs = generator_logprobs(extra + [(r["prompt"], r["text"]) for r in dev + test],
                                      args.cache.with_suffix(".generator.json"), recipe.generation.system_prompt)
        ablations.update({"generator": ("generator",),
                          "all+generator": ("embeddings", "signals", "judges", "generator"),
                          "signals+judges+generator": ("signals", "judges", "generator")})
    for name, groups in ablations.items():
        started = time.perf_counter()
        cv = out["ablations"][name] = ablation(dev, cache, groups, logprobs)
        at, chosen = cv["at_threshold"], cv["threshold_for_precision_0.5_on_oof"]
        print(f"{name:24s} CV AUC {cv['auc']:.3f} (95% CI {_ci(cv['auc_interval'])})  at 0.5: precision "
              f"{_num(at['precision'])} recall {_num(at['recall'])} ({at['accepted_good']}+{at['accepted_bad']} "
              "accepted)  " + (f"lowest OOF threshold with precision >= 0.5: {chosen['threshold']:.3f} (recall "
                               f"{chosen['recall']:.3f})" if chosen else "no OOF threshold reaches precision 0.5")
              + f"  [{time.perf_counter() - started:.0f}s]", flush=True)
    best = max(out["ablations"], key=lambda n: out["ablations"][n]["auc"] or 0.0)
    chosen = out["ablations"][best]["threshold_for_precision_0.5_on_oof"]
    if test:
        t = out["test"] = held_out(dev, test, cache, best, ablations[best], logprobs,
                                   chosen["threshold"] if chosen else 0.5, recipe.grading.pass_mark)
        print(f"TEST (once; {best} trained on all dev): {t['rows']} rows, {t['good']} good (base rate "
              f"{t['base_rate']:.3f}): AUC {t['auc']:.3f} (95% CI {_ci(t['auc_interval'])}); at dev threshold "
              f"{t['threshold_from_dev']:.3f}: precision {_num(t['at_threshold']['precision'])}, recall "
              f"{_num(t['at_threshold']['recall'])}; quickstart panel AUC {t['panel_auc']:.3f} "
              f"(95% CI {_ci(t['panel_auc_interval'])})")
    started = time.perf_counter()
    cross = out["across_labellers"] = {"configuration": best, **across_labellers(
        dev, test, cache, ablations[best], logprobs, chosen["threshold"] if chosen else 0.5)}
    for part in ("dev", "dev+test"):
        if cross.get(part):
            print(f"ACROSS LABELLERS ({best}; trained on dev rows only; tested on {part} rows):")
            for line in cross_lines(cross[part]):
                print(f"  {line}")
        elif part in cross:
            print(f"ACROSS LABELLERS on {part} rows: not measured (fewer than two labellers named)")
    print(f"  [{time.perf_counter() - started:.0f}s]")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")


def _ci(interval: list[float] | None) -> str:
    return "n/a" if not interval else f"{interval[0]:.3f}-{interval[1]:.3f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
