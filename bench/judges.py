"""How well judges separate good rows from bad: ROC-AUC on the shipped labelled set.

Grades `recipes/labels/quickstart.jsonl` (101 good, 120 bad rows of six kinds) with several
gradings of the quickstart task, through the same panel code `synthfactory calibrate` and a run
use, on one in-process llama.cpp engine (no Ray: this measures judges, not the factory). Prints
per grading: ROC-AUC, AUC per criterion and per kind of bad row, the threshold that reaches
precision 0.8 with its recall, and the score's Spearman correlation with response length.

    .venv/bin/python bench/judges.py [--only logprobs,json,panel,signals] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from synthfactory.engines.base import EngineSpec  # noqa: E402
from synthfactory.grading.calibration import grade_labels, load_labels, report_for  # noqa: E402
from synthfactory.recipe import load_recipe  # noqa: E402

LABELS = ROOT / "recipes" / "labels" / "quickstart.jsonl"
RUBRIC = [{"name": "accuracy", "description": "The facts it states are correct."},
          {"name": "clarity", "description": "A high-school student can follow it."},
          {"name": "relevance", "description": "It explains the topic it was asked about."}]
GRADINGS = {
    "logprobs": {"method": "logprobs", "rubric": RUBRIC, "threshold": 0.35},
    "json": {"method": "json", "rubric": RUBRIC, "threshold": 0.5},
    "panel": None,  # the shipped quickstart's grading, as it is
    "signals": {"judges": [{"name": "relevance", "method": "relevance"}, {"name": "form", "method": "form"}],
                "threshold": 0.6},
}


def grading_for(name: str):
    loaded = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    if GRADINGS[name] is None:
        return loaded.recipe.grading
    return type(loaded.recipe.grading).model_validate(GRADINGS[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(GRADINGS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    rows = load_labels(LABELS).rows
    engine = None
    for name in args.only.split(","):
        grading = grading_for(name)
        llm = [c for c in grading.panel if c.method in ("json", "logprobs")]
        if llm and engine is None:
            from synthfactory.engines.llamacpp import LlamaCppEngine

            engine = LlamaCppEngine(EngineSpec("llamacpp", "smollm2-135m-instruct", {"threads": args.threads},
                                               logprobs=True))
        started = time.perf_counter()
        graded = grade_labels(rows, grading, [engine.chat if c.method in ("json", "logprobs") else None
                                              for c in grading.panel], chunk=len(rows))
        seconds = time.perf_counter() - started
        report = report_for(graded, grading, 0.8, LABELS, "quickstart")
        wanted = report["threshold_for_target_precision"]
        print(f"\n== {name}: {', '.join(f'{c.name} ({c.method})' for c in grading.panel)}; "
              f"{len(rows)} rows in {seconds:.1f}s, {report['unreadable']} unreadable")
        print(f"ROC-AUC {_num(report['auc'])}; kappa at threshold {grading.pass_mark:g}: "
              f"{_num(report['at_recipe_threshold']['kappa'])}; "
              + (f"precision >= 0.8 at threshold {wanted['threshold']:.4g} (recall {wanted['recall']:.3f})"
                 if wanted else "no threshold reaches precision 0.8"))
        print("AUC per criterion: " + ", ".join(f"{k} {_num(v)}" for k, v in report["auc_per_criterion"].items()))
        if report["auc_per_judge"]:
            print("AUC per judge: " + ", ".join(f"{k} {_num(v)}" for k, v in report["auc_per_judge"].items()))
        print("AUC per kind: " + ", ".join(f"{k} {_num(v)}" for k, v in report["auc_per_kind"].items()))
        print("mean score per kind: " + ", ".join(f"{k} {v:.3f}" for k, v in report["mean_score_per_kind"].items()))
        print(f"score vs length (Spearman): {_num(report['verbosity_spearman'])}")


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
