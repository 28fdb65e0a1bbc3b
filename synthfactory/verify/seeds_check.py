"""`synthfactory seeds check RECIPE`: how many near misses of each code seed's reference solution
its tests reject (`synthfactory.verify.mutation`), run through the recipe's own `python_tests` check.

Reads the seeds the recipe's run would read (`seeds.path`, its format and limits); a seed takes part
when it has a `reference` and `tests` (or `io_tests`). Prints each seed's killed/total, score and surviving mutants,
then the overall score. Exit 1 when a seed's reference fails its own tests or, with `--min-score`,
when a seed scores below it; exit 2 for a recipe it cannot check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import Any

from synthfactory.errors import UserError

CHUNK = 16  # seeds per verify_many call: lines print as chunks finish, and the sandboxes stay busy


def add_seeds_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """`synthfactory seeds check` (one subcommand for now; `seeds` groups what is checked on seeds)."""
    seeds = sub.add_parser("seeds", parents=[common], help="check a recipe's seeds")
    actions = seeds.add_subparsers(dest="seeds_command", required=True)
    check = actions.add_parser("check", parents=[common],
                               help="mutation score of each code seed: the share of near misses of its "
                                    "reference solution that its tests reject")
    check.add_argument("recipe")
    check.add_argument("--min-score", type=float, default=None, metavar="X",
                       help="exit 1 if a seed's score (0 to 1) is below X")
    check.add_argument("--no-cache", action="store_true",
                       help="run every mutant again (default: reuse the results cached under "
                            "~/.cache/synthfactory/mutation)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=seeds_check_command)


def seeds_check_command(args: argparse.Namespace) -> int:
    from synthfactory.inputs.seeds import load_seeds
    from synthfactory.recipe import load_recipe
    from synthfactory.verify.mutation import default_cache, mutation_scores

    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise UserError(f"--min-score {args.min_score}: give a share from 0 to 1")
    loaded = load_recipe(args.recipe)
    verifier = _tests_verifier(loaded, args.recipe)
    if loaded.seeds_path is None:
        raise UserError(f"{args.recipe}: its seeds come from published versions; seeds check reads a seeds.path file")
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path)
    usable = [s for s in seeds.rows
              if (s.fields.get("tests") or s.fields.get("io_tests")) and s.fields.get("reference")]
    items = [(s.fields, str(s.fields["reference"])) for s in usable]
    names = [str(s.fields.get("name") or s.location) for s in usable]  # a seed without a name: file:line
    if not items:
        raise UserError(f"{loaded.seeds_path}: no seed has both `tests` and `reference` (the reference solution "
                        "is what seeds check mutates)")
    why = verifier.preflight()
    if why:
        raise UserError(f"seeds check runs every mutant in the recipe's python_tests sandbox: {why}")
    started = time.monotonic()
    if not args.json:
        print(f"{loaded.seeds_path.name}: {len(items)} seeds with tests and a reference "
              f"({len(seeds.rows) - len(items)} without, {len(seeds.quarantined)} rows quarantined); "
              f"mutants run through python_tests", flush=True)
    cache = None if args.no_cache else default_cache()
    reports = []
    for first in range(0, len(items), CHUNK):
        for k, report in enumerate(mutation_scores(items[first:first + CHUNK], verifier, cache)):
            report = replace(report, name=names[first + k])
            reports.append(report)
            if not args.json:
                print(_line(report, args.min_score), flush=True)
    killed, total = sum(r.killed for r in reports if not r.broken), sum(r.total for r in reports if not r.broken)
    broken = [r.name for r in reports if r.broken]
    below = [r.name for r in reports if _below(r, args.min_score)]
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps({"recipe": str(loaded.path), "seeds": [_as_json(r) for r in reports], "killed": killed,
                          "total": total, "score": killed / total if total else None, "min_score": args.min_score,
                          "below": below, "broken": broken, "seconds": round(seconds, 1)}))
    else:
        scored = [r for r in reports if r.score is not None]
        lowest = sorted(scored, key=lambda r: r.score or 0.0)[:5]  # `or 0.0` for the checker: all are scored
        print(f"overall: {killed}/{total} mutants killed ({_score(killed / total if total else None)}) in "
              f"{seconds:.1f}s ({sum(r.cached for r in reports)} seeds from the cache); lowest: "
              + ", ".join(f"{r.name} {_score(r.score)}" for r in lowest))
        if broken:
            print(f"{len(broken)} seeds fail their own tests on their reference: {', '.join(broken)}", file=sys.stderr)
        if below:
            print(f"{len(below)} seeds below --min-score {args.min_score}: {', '.join(below)}", file=sys.stderr)
    return 1 if broken or below else 0


def _tests_verifier(loaded: Any, recipe: str) -> Any:
    """The recipe's first `python_tests` check, built with its options (its sandbox limits)."""
    from synthfactory.registry import VERIFIERS

    config = next((v for v in loaded.recipe.verification if v.method == "python_tests"), None)
    if config is None:
        raise UserError(f"{recipe}: no python_tests verification; seeds check measures the tests of code seeds")
    cls = VERIFIERS.load(config.method)
    return cls(cls.Options(**config.options))


def _below(report: Any, minimum: float | None) -> bool:
    return report.broken is None and minimum is not None and report.score is not None and report.score < minimum


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _line(report: Any, minimum: float | None) -> str:
    if report.broken:
        return f"  {report.name:<28} BROKEN  {report.broken}"
    mark = "  BELOW" if _below(report, minimum) else ""
    survivors = f"  survivors: {'; '.join(report.survivors)}" if report.survivors else ""
    return f"  {report.name:<28} {report.killed:>3}/{report.total:<3} {_score(report.score)}{mark}{survivors}"


def _as_json(report: Any) -> dict[str, Any]:
    return {"name": report.name, "killed": report.killed, "total": report.total, "score": report.score,
            "survivors": list(report.survivors), "broken": report.broken, "cached": report.cached}
