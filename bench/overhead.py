"""Factory overhead: the same generation and judge requests sent straight to the engine vs
through the whole factory (CLI → Prefect flow → Ray actor → GX gate → Delta commit).

The factory runs first; the raw side then sends the same generation requests and the judge's
requests for exactly the rows the factory graded (its screens keep some rows from the judge).

Prints factory wall time / raw engine time (target ≤ 1.10 at 256 samples) and each side's
engine busy share (the factory's from its pool: busy engine-seconds / (seconds from engines
ready to the last batch x replicas); the raw side's over its whole wall, engine loads included),
then the quickstart's wall time and time to its first accepted batch. Both sides run in this one
invocation, on the same machine, one after the other.

    .venv/bin/python bench/overhead.py [--samples 256] [--batch-size 16] [--replicas N] [--skip-quickstart]
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

from bench.methods import busy_share, equal_speed, graded_ids  # noqa: E402
from synthfactory.engines import create_engine  # noqa: E402
from synthfactory.engines.base import ChatRequest  # noqa: E402
from synthfactory.grading import Panel  # noqa: E402
from synthfactory.inputs.seeds import load_seeds  # noqa: E402
from synthfactory.model.lineage import row_id_for  # noqa: E402
from synthfactory.recipe import load_recipe  # noqa: E402
from synthfactory.run.plan import plan_run  # noqa: E402

RECIPE = ROOT / "recipes" / "quickstart.yaml"


_engine = None
_busy = 0.0


def _load(spec) -> None:
    global _engine
    _engine = create_engine(spec)


def _timed_chat(requests: list) -> list:
    global _busy
    started = time.perf_counter()
    try:
        return _engine.chat(requests)
    finally:
        _busy += time.perf_counter() - started


def _run_batch(items, sampling, grading, graded: set[str]) -> tuple[int, float]:
    """One batch as the factory runs it: one generation call, then the recipe's judge panel on
    the rows the factory graded (one call per LLM judge; judges that are not LLMs compute here,
    as they do in the flow). Returns the requests sent and the engine's busy seconds for them."""
    global _busy
    _busy = 0.0
    panel = Panel(grading)
    generated = _timed_chat([
        ChatRequest(messages=i.messages, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                    top_p=sampling.top_p, seed=i.sampling_seed)
        for i in items
    ])
    pairs = [(item.prompt, g.text.strip()) for item, g in zip(items, generated, strict=True)]
    judged = panel.grade([pair for pair in pairs if row_id_for(*pair) in graded],
                         [_timed_chat if c.method in ("json", "logprobs") else None for c in panel.configs],
                         lambda k, attempt: attempt)
    return len(generated) + judged.requests, _busy


def raw_engine(batches: int, batch_size: int, replicas: int, graded: set[str]) -> tuple[float, int, float]:
    """The factory's exact requests straight to `replicas` engine processes (the factory's own
    replica count and threads), batches handed out as engines free up; returns (seconds,
    requests, engine busy seconds)."""
    loaded = load_recipe(RECIPE, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    recipe = loaded.recipe
    started = time.perf_counter()
    with ProcessPoolExecutor(replicas, mp_context=get_context("spawn"), initializer=_load,
                             initargs=(plan.judge,)) as pool:  # self-graded: one engine per replica
        futures = [pool.submit(_run_batch, b.items, recipe.generation.sampling, recipe.grading, graded)
                   for b in plan.batches]
        done = [f.result() for f in futures]
    return time.perf_counter() - started, sum(n for n, _ in done), sum(s for _, s in done)


def factory(store: Path, *args: str) -> tuple[float, dict]:
    command = [sys.executable, "-m", "synthfactory.cli", "run", str(RECIPE), "--store", str(store), "--json", *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"factory run failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-quickstart", action="store_true")
    parser.add_argument("--replicas", type=int, default=os.cpu_count(),
                        help="engine processes on the raw side; the factory's default is one per CPU")
    args = parser.parse_args()
    batches = max(1, args.samples // args.batch_size)
    samples = batches * args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "overhead"
        fac_s, summary = factory(store, "--batches", str(batches), "--batch-size", str(args.batch_size))
        print(f"factory    : {summary['generated']} samples, {summary['engine_requests']} requests in {fac_s:.1f}s "
              f"(flow {summary['seconds']:.1f}s, engines ready after {summary['engines_ready_seconds']:.1f}s, "
              f"engines busy {summary['engine_busy_seconds']:.1f}s, busy share {busy_share(summary)}, "
              f"accepted {summary['accepted']}, version {summary['version']})", flush=True)
        graded = graded_ids(store / load_recipe(RECIPE).recipe.name)
        raw_s, raw_requests, raw_busy = raw_engine(batches, args.batch_size, args.replicas, graded)
        print(f"raw engine : {samples} samples, {raw_requests} requests in {raw_s:.1f}s "
              f"({args.replicas} engine processes, busy {raw_busy:.1f}s, "
              f"share {raw_busy / (raw_s * args.replicas):.3f} of the raw wall)", flush=True)
        print(f"overhead ratio (factory wall / raw engine) at {samples} samples: {fac_s / raw_s:.3f}  "
              "(target <= 1.10); "
              f"at equal engine speed {equal_speed(fac_s, summary, raw_s, raw_busy)}")
        if not args.skip_quickstart:
            q_s, q = factory(Path(tmp) / "quickstart")
            print(f"quickstart : {q_s:.1f}s wall ({q['seconds']:.1f}s in the flow), first accepted batch after "
                  f"{q['first_batch_seconds']}s of the flow; {q['accepted']}/{q['generated']} accepted")


if __name__ == "__main__":
    main()
