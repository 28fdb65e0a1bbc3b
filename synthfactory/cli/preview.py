"""`synthfactory preview RECIPE`: a few of the plan's rows through every stage on the real engines,
and an estimate of the whole run (`synthfactory.run.preview`); the store is read, never written."""

from __future__ import annotations

import argparse
import json
from typing import Any

from synthfactory.cli.common import check_models, check_store, num


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    preview = sub.add_parser("preview", parents=[common],
                             help="a few rows through every stage, and an estimate of the run; writes nothing")
    preview.add_argument("recipe")
    preview.add_argument("--rows", type=int, default=5, help="how many of the plan's rows to preview (default 5)")
    preview.add_argument("--target-rows", type=int, default=None,
                         help="estimate a run to N accepted rows (default the recipe's batches.target_rows)")
    preview.add_argument("--store", default="store", help="the store the run would publish to (read, not written)")
    preview.add_argument("--json", action="store_true", help="print one JSON object: rows, suite, estimate")
    preview.set_defaults(func=preview_command)


def preview_command(args: argparse.Namespace) -> int:
    """A few of the plan's rows through every stage on the real engines, then an estimate of the
    whole run; the store is read, never written."""
    from synthfactory.model.cost import Prices
    from synthfactory.quality.guards import QualityGuards
    from synthfactory.recipe import load_recipe
    from synthfactory.run.plan import engine_specs_for
    from synthfactory.run.preview import estimate, outcome_rows, plan_for_preview, preview_items, run_preview
    from synthfactory.store import DatasetStore

    loaded = load_recipe(args.recipe, target_rows=args.target_rows)
    specs = engine_specs_for(loaded)
    check_models(specs)
    check_store(f"{args.store.rstrip('/')}/{loaded.recipe.name}", loaded.recipe)
    store = DatasetStore.for_run(args.store, loaded.recipe)
    guards = QualityGuards.for_run(loaded, store.index_path, store.embeddings_path)
    plan = plan_for_preview(loaded, store, guards)
    batch = preview_items(plan, args.rows)
    from synthfactory.engines.session import engine_session

    with engine_session(specs, quiet=not args.debug) as pool:
        state = run_preview(loaded, plan, batch, guards, pool.chat)
        replicas = len(pool.replicas)
    rows = outcome_rows(batch, state)
    validation = state.validation or {}
    suite = {"outcome": state.status, "failed_expectations": validation.get("failed_expectations", [])}
    guess = estimate(plan, batch, state, Prices.from_card(loaded.recipe.card), replicas,
                     loaded.recipe.batches.target_rows)
    if args.json:
        print(json.dumps({"recipe": loaded.recipe.name, "rows": rows, "suite": suite, "estimate": guess},
                         default=str, ensure_ascii=False))
        return 0
    print(f"preview of {loaded.recipe.name}: {len(batch.items)} of the {plan.candidates} rows the next run plans "
          f"(spread over its seeds), through every stage on the real engines; nothing written")
    for n, row in enumerate(rows, 1):
        print(f"\n[{n}] seed: {row['seed']}")
        print(f"    prompt: {clip(row['prompt'], 200)}")
        print(f"    output: {clip(row['output'], 300)}")
        if row["scores"] is not None:
            print(f"    scores: {scores_line(row['scores'])} -> {num(row['score'])}")
        print("    outcome: " + ("accepted" if row["outcome"] == "accepted" else
                                 f"{row['outcome']} at {row['stage']}: {row['reason']}"))
    failed = ", ".join(suite["failed_expectations"])
    print(f"\nsuite {loaded.suite_path.name} on these {len(batch.items)} rows: {suite['outcome']}"
          + (f" (failed: {failed})" if failed else "")
          + (f"; the run's batches hold {loaded.recipe.batches.size} rows, which its set-level expectations "
             "judge" if len(batch.items) < loaded.recipe.batches.size else ""))
    print(estimate_text(guess))
    return 0


def clip(text: Any, limit: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def scores_line(scores: dict[str, Any]) -> str:
    """`judge score (criterion grade, ...)` per judge of a panel, or `criterion grade` per criterion."""
    parts = []
    for name, value in scores.items():
        if isinstance(value, dict):
            grades = ", ".join(f"{k} {num(v)}" for k, v in value.items() if k != "score")
            parts.append(f"{name} {num(value.get('score'))}" + (f" ({grades})" if grades else ""))
        else:
            parts.append(f"{name} {num(value)}")
    return "; ".join(parts)


def estimate_text(e: dict[str, Any]) -> str:
    from synthfactory.model.cost import NO_PRICE, money_text

    low, high = e["acceptance_interval"]
    lines = [f"\nestimate from {e['accepted']} of {e['previewed']} rows passing screen, judge and filter "
             f"(acceptance estimate {e['acceptance_rate']:.2f}, 95% interval {low:.2f}-{high:.2f}):"]
    c_low, c_high = e["candidates_interval"]
    if e["target_rows"] is not None:
        lines.append(f"  {e['target_rows']} rows need about {num(e['candidates'])} candidates "
                     f"(interval {num(c_low)}-{num(c_high)}); the seeds give {e['candidates_in_plan']}"
                     + (" - fewer than needed: add seeds or samples_per_seed" if e["short_of_target"] else ""))
    else:
        r_low, r_high = e["rows_interval"]
        lines.append(f"  the full recipe generates {e['candidates']} candidates: about {e['rows']} rows pass "
                     f"(interval {r_low}-{r_high})")
    money = ", " + money_text(e.get("money"), e["currency"], missing="money " + NO_PRICE)
    lines.append(f"  about {num(e['tokens'])} tokens, {num(e['engine_seconds'])} engine-seconds{money}, "
                 f"{num(e['wall_seconds'])} s of wall time on {e['replicas']} replicas (after the engines load)")
    lines.append(f"  per accepted row: {num(e['engine_seconds_per_accepted_row'])} engine-seconds")
    return "\n".join(lines)
