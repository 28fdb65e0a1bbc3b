"""The learned judge measured by cross-validation on labelled rows, per feature group (an ablation).

The quickstart panel's judges (relevance, form, smollm2 logprobs) grade every labelled row once,
on one in-process llama.cpp engine (their scores are cached in --cache, keyed by prompt and text,
so the ablations and a later test run do not grade again). Then, per feature group (embeddings
only, signals only, judges only, all), nested stratified 5-fold cross-validation on the --labels
rows gives ROC-AUC and precision/recall (the quality figures), beside the quickstart panel's own
score on the same rows. Nothing is fitted or tuned on --test: with it, the configuration with the
best dev CV AUC is trained on all of --labels, its threshold is the lowest one whose dev
out-of-fold precision reaches 0.5, and the --test rows are scored once.

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
from synthfactory.grading.learned import build_features  # noqa: E402
from synthfactory.grading.llm import JudgeScore  # noqa: E402
from synthfactory.grading.measures import at_threshold, auc_interval, roc_auc, threshold_for_precision  # noqa: E402
from synthfactory.grading.panel import Panel  # noqa: E402
from synthfactory.lineage import stable_hash  # noqa: E402
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
    extra = np.array([logprobs[stable_hash(rows[k]["prompt"], rows[k]["text"])] for k in keep])
    names = ["generator.mean_logprob", "generator.p10_logprob"]
    if alone:
        return lm.FeatureTable(names, extra, None)
    return lm.FeatureTable(table.names + names, np.hstack([table.scalars, extra]), table.embeddings)


def features(rows: list[dict[str, Any]], cache: dict[str, Any], groups: tuple[str, ...]
             ) -> tuple[lm.FeatureTable, np.ndarray, list[int]]:
    """The feature table of the rows every judge could read, their labels, and which rows those are."""
    keep = [k for k, r in enumerate(rows) if all(v is not None for v in cache[stable_hash(r["prompt"], r["text"])].values())]
    pairs = [(rows[k]["prompt"], rows[k]["text"]) for k in keep]
    entries = [cache[stable_hash(*p)] for p in pairs]
    others = {name: [JudgeScore(raw={}, normalised=e[name]["normalised"], score=e[name]["score"]) for e in entries]
              for name in sorted(entries[0])}
    from synthfactory.quality.embed import shared_embedder

    table = build_features(pairs, others, groups, shared_embedder)
    return table, np.array([bool(rows[k]["good"]) for k in keep]), keep


def panel_score(entry: dict[str, Any]) -> float:
    """The quickstart panel's row score: mean of its voting judges (relevance, form; smollm2 weight 0)."""
    return (entry["relevance"]["score"] + entry["form"]["score"]) / 2


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
    out: dict[str, Any] = {"labels": str(args.labels), "measured_on": "nested stratified 5-fold CV on the labels file",
                           "ablations": {}}
    _, good_all, keep = features(dev, cache, ("signals",))
    panel = [panel_score(cache[stable_hash(dev[k]["prompt"], dev[k]["text"])]) for k in keep]
    quickstart = load_recipe(ROOT / "recipes" / "quickstart.yaml").recipe.grading
    out["panel"] = {"auc": roc_auc(good_all.tolist(), panel), "auc_interval": auc_interval(good_all.tolist(), panel),
                    "rows": len(keep), "good": int(good_all.sum()),
                    "base_rate": float(good_all.mean()),
                    "at_threshold": at_threshold(good_all.tolist(), panel, quickstart.pass_mark),
                    "per_judge_auc": {n: roc_auc(good_all.tolist(), [cache[stable_hash(dev[k]["prompt"], dev[k]["text"])][n]["score"]
                                                                   for k in keep]) for n in ("relevance", "form", "smollm2")}}
    print(f"dev: {len(dev)} rows, {len(keep)} readable by every judge, {int(good_all.sum())} good "
          f"(base rate {good_all.mean():.3f})")
    print(f"quickstart panel score: AUC {out['panel']['auc']:.3f} (95% CI {_ci(out['panel']['auc_interval'])}); per judge "
          + ", ".join(f"{n} {v:.3f}" for n, v in out["panel"]["per_judge_auc"].items()))
    ablations = dict(ABLATIONS)
    logprobs: dict[str, list[float]] = {}
    if args.generator_logprob:
        system = load_recipe(ROOT / "recipes" / "quickstart.yaml").recipe.generation.system_prompt
        logprobs = generator_logprobs(extra + [(r["prompt"], r["text"]) for r in dev + test],
                                      args.cache.with_suffix(".generator.json"), system)
        ablations.update({"generator": ("signals", "+generator-alone"), "all+generator": (
            "embeddings", "signals", "judges", "+generator"), "signals+judges+generator": ("signals", "judges", "+generator")})
    for name, groups in ablations.items():
        started = time.perf_counter()
        table, good, keep_rows = features(dev, cache, tuple(g for g in groups if not g.startswith("+")))
        if "+generator" in groups or "+generator-alone" in groups:
            table = with_generator(table, dev, keep_rows, logprobs, alone="+generator-alone" in groups)
        cv = lm.cross_validate(table, good, threshold=0.5)
        oof = cv.pop("oof_scores")
        cv["auc_interval"] = auc_interval(good.tolist(), oof)
        chosen = threshold_for_precision(good.tolist(), oof, TARGET_PRECISION)
        cv["threshold_for_precision_0.5_on_oof"] = chosen
        out["ablations"][name] = cv
        at = cv["at_threshold"]
        print(f"{name:15s} CV AUC {cv['auc']:.3f} (95% CI {_ci(cv['auc_interval'])})  at 0.5: precision {_num(at['precision'])} recall "
              f"{_num(at['recall'])} ({at['accepted_good']}+{at['accepted_bad']} accepted)  "
              + (f"lowest OOF threshold with precision >= 0.5: {chosen['threshold']:.3f} (recall {chosen['recall']:.3f})"
                 if chosen else "no OOF threshold reaches precision 0.5")
              + f"  [{time.perf_counter() - started:.0f}s]", flush=True)
    if test:
        best = max(out["ablations"], key=lambda n: out["ablations"][n]["auc"] or 0.0)
        groups = ablations[best]
        plain = tuple(g for g in groups if not g.startswith("+"))
        table, good, keep_rows = features(dev, cache, plain)
        held, held_good, held_keep = features(test, cache, plain)
        if "+generator" in groups or "+generator-alone" in groups:
            alone = "+generator-alone" in groups
            table = with_generator(table, dev, keep_rows, logprobs, alone)
            held = with_generator(held, test, held_keep, logprobs, alone)
        model, cv = lm.train(table, good, threshold=0.5)
        chosen = out["ablations"][best]["threshold_for_precision_0.5_on_oof"]
        threshold = chosen["threshold"] if chosen else 0.5
        scores = model.scores(held).tolist()
        test_panel = [panel_score(cache[stable_hash(test[k]["prompt"], test[k]["text"])]) for k in held_keep]
        out["test"] = {"configuration": best, "groups": list(groups), "rows": len(held_keep),
                       "good": int(held_good.sum()), "base_rate": float(held_good.mean()),
                       "auc": roc_auc(held_good.tolist(), scores), "auc_interval": auc_interval(held_good.tolist(), scores),
                       "panel_auc_interval": auc_interval(held_good.tolist(), test_panel), "threshold_from_dev": threshold,
                       "at_threshold": at_threshold(held_good.tolist(), scores, threshold),
                       "panel_auc": roc_auc(held_good.tolist(), test_panel),
                       "panel_at_threshold": at_threshold(held_good.tolist(), test_panel, quickstart.pass_mark)}
        t = out["test"]
        print(f"TEST (once; {best} trained on all dev): {t['rows']} rows, {t['good']} good (base rate "
              f"{t['base_rate']:.3f}): AUC {t['auc']:.3f} (95% CI {_ci(t['auc_interval'])}); at dev threshold {threshold:.3f}: precision "
              f"{_num(t['at_threshold']['precision'])}, recall {_num(t['at_threshold']['recall'])}; "
              f"quickstart panel AUC {t['panel_auc']:.3f} (95% CI {_ci(t['panel_auc_interval'])})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")


def _ci(interval: list[float] | None) -> str:
    return "n/a" if not interval else f"{interval[0]:.3f}-{interval[1]:.3f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
