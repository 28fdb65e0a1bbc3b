"""Multi-round methods' overhead: the factory's wall time for `instruct` and `conversation` at 64
seeds vs the same engine requests sent straight to the engine.

The factory runs first (CLI → Prefect flow → Ray actors → screens → judge → GX → Delta). The raw
side then sends the same requests to the same number of llama.cpp processes: every round of the
method for every work item (one call per round per batch, as the factory does; seeds are fixed,
so the model writes the same texts and the later rounds ask the same things), and the judge's
requests for exactly the rows the factory graded (the rows its screens passed). Prints factory
wall / raw engine per method (target ≤ 1.15) and each side's engine busy share: the factory's
from its pool (busy engine-seconds / (seconds from engines ready to the last batch x replicas)),
the raw side's over its whole wall time (engine loads included).

    .venv/bin/python bench/methods.py [--seeds 64] [--batch-size 8] [--methods instruct conversation]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from synthfactory.engines import create_engine  # noqa: E402
from synthfactory.grading import make_judge  # noqa: E402
from synthfactory.inputs.seeds import load_seeds  # noqa: E402
from synthfactory.methods import method_for  # noqa: E402
from synthfactory.methods.base import Row, run_rounds  # noqa: E402
from synthfactory.model.lineage import row_id_for  # noqa: E402
from synthfactory.recipe import load_recipe  # noqa: E402
from synthfactory.run.plan import plan_run  # noqa: E402
from synthfactory.store import DatasetStore  # noqa: E402

_worker: dict = {}


def _load(recipe_path: str, batches: int, batch_size: int) -> None:
    """Once per engine process, outside the timed work: the engine, the method and the judge."""
    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    _worker.update(engine=create_engine(plan.judge), method=method_for(loaded.recipe),
                   judge=make_judge(loaded.recipe.grading))  # self-graded: one engine per replica


def _timed_chat(requests: list) -> list:
    started = time.perf_counter()
    try:
        return _worker["engine"].chat(requests)
    finally:
        _worker["busy"] = _worker.get("busy", 0.0) + time.perf_counter() - started


def _run_batch(items: list, graded: set[str]) -> tuple[int, float]:
    """One batch as the factory's engines see it: each round in one call, then one judge call.
    Returns the requests sent and the engine's busy seconds for them."""
    method, judge = _worker["method"], _worker["judge"]
    _worker["busy"] = 0.0
    drafts, sent = run_rounds(method, items, _timed_chat)
    asked = []
    for draft in drafts:
        if not isinstance(draft.outcome, Row):
            continue
        fields = draft.outcome.fields
        if row_id_for(draft.item.prompt, method.identity(fields)) not in graded:
            continue
        row = {"prompt": draft.item.prompt, **fields}
        asked += [r for pair in method.judge_items(row) for r in judge.requests(*pair, 0)]
    if asked:
        _timed_chat(asked)
    return sent + len(asked), _worker["busy"]


def graded_ids(store: Path) -> set[str]:
    """Rows the factory's judge saw: published, or rejected at or after the grade stage."""
    data = DatasetStore(store)
    ids = set(data.read(columns=["id"]).column("id").to_pylist()) if data.exists() else set()
    for record in data.read_quarantine().to_pylist():
        if record["stage"] in ("grade", "filter", "validate", "publish"):
            ids.add(record["location"])
    return ids


def factory(recipe: Path, store: Path, batches: int, batch_size: int) -> tuple[float, dict]:
    command = [sys.executable, "-m", "synthfactory.cli", "run", str(recipe), "--store", str(store), "--json",
               "--batches", str(batches), "--batch-size", str(batch_size)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: nothing passed the 135M judge; the time still counts
        sys.exit(f"factory run failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return seconds, json.loads(lines[-1]) if lines else {"accepted": 0, "engine_requests": None}


def raw_engine(recipe: Path, batches: int, batch_size: int, replicas: int, graded: set[str]
               ) -> tuple[float, int, float]:
    """(wall seconds, requests, engine busy seconds) of the same requests on `replicas` processes."""
    loaded = load_recipe(recipe, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    started = time.perf_counter()  # engine loads included, as the factory's wall includes its own
    with ProcessPoolExecutor(replicas, mp_context=get_context("spawn"), initializer=_load,
                             initargs=(str(recipe), batches, batch_size)) as pool:
        futures = [pool.submit(_run_batch, list(b.items), graded) for b in plan.batches]
        done = [f.result() for f in futures]
    return time.perf_counter() - started, sum(n for n, _ in done), sum(s for _, s in done)


def equal_speed(fac_s: float, summary: dict, raw_s: float, raw_busy: float) -> str:
    """The ratio had the factory's engines served each request as fast as the raw side's did:
    (factory wall / its engine-seconds) / (raw wall / raw engine-seconds). On a shared machine the
    two sides' engines run at different speeds (other load, the driver's own CPU work); this
    separates waiting (rounds, the tail, start-up) from slower engines."""
    busy = summary.get("engine_busy_seconds")
    return f"{(fac_s / busy) / (raw_s / raw_busy):.3f}" if busy and raw_busy else "n/a"


def busy_share(summary: dict) -> str:
    """The factory's engine busy share as its pool measured it; for a factory that predates
    `engine_busy_share`, the same ratio from its summary (flow end instead of the last batch)."""
    if summary.get("engine_busy_share") is not None:
        return f"{summary['engine_busy_share']:.3f}"
    up = (summary.get("seconds") or 0) - (summary.get("engines_ready_seconds") or 0)
    replicas = summary.get("engine_replicas") or os.cpu_count()  # the factory's default: one per CPU
    if not (up > 0 and summary.get("engine_busy_seconds") is not None):
        return "n/a"
    return f"~{summary['engine_busy_seconds'] / (up * replicas):.3f} (from the summary)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=["instruct", "conversation"])
    parser.add_argument("--replicas", type=int, default=os.cpu_count(),
                        help="engine processes on the raw side; the factory's default is one per CPU")
    args = parser.parse_args()
    batches = max(1, args.seeds // args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.methods:
            recipe = ROOT / "recipes" / f"{name}.yaml"
            store = Path(tmp) / "store"
            fac_s, summary = factory(recipe, store, batches, args.batch_size)
            graded = graded_ids(store / load_recipe(recipe).recipe.name)
            raw_s, raw_requests, raw_busy = raw_engine(recipe, batches, args.batch_size, args.replicas, graded)
            print(f"{name:<13} {batches * args.batch_size} items: raw engine {raw_requests} requests in {raw_s:.1f}s "
                  f"(engines busy {raw_busy:.1f}s, share {raw_busy / (raw_s * args.replicas):.3f} of the raw wall); "
                  f"factory {summary.get('engine_requests')} requests in {fac_s:.1f}s wall "
                  f"(flow {summary.get('seconds')}s, "
                  f"engines ready after {summary.get('engines_ready_seconds')}s, engines busy "
                  f"{summary.get('engine_busy_seconds')}s, busy share {busy_share(summary)}, "
                  f"accepted {summary.get('accepted')}); ratio factory/raw {fac_s / raw_s:.3f}  (target <= 1.15); "
                  f"at equal engine speed {equal_speed(fac_s, summary, raw_s, raw_busy)}", flush=True)


if __name__ == "__main__":
    main()
