"""Verification's cost: what the `verify` stage costs per row, and what it adds to a verified run.

1. Verified rows per second per core for `python_tests` and `math_answer`, on a fixed set of
   constructed responses, half right and half wrong (each checked: right ones pass, wrong ones
   fail): one thread, one row at a time, so at most one core works (math-verify in this process;
   for `python_tests`, one sandbox process at a time). `python_tests` is also timed as the stage
   runs it locally, one thread and sandbox per core.
2. The sandbox's start cost per row: a one-line program through bubblewrap, through the rlimits
   fallback (`SYNTHFACTORY_SANDBOX=rlimits`), and as a plain `python -I -S` subprocess (the
   interpreter flags the sandbox uses; `python -I` alone also reads site-packages).
3. `recipes/math.yaml` at 128 seeds (2 samples each: 256 generations, no judge): the factory's wall
   time (CLI -> Prefect flow -> Ray actors -> screens -> verify -> GX -> Delta; verification runs
   while other batches generate) over the same generation requests sent straight to the same
   number of llama.cpp processes, one call per batch, as bench/methods.py does (target <= 1.10).

All in one invocation, one after the other, on this machine.

    .venv/bin/python bench/verify.py [--seeds 128] [--batch-size 16] [--rows 200] [--starts 40] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.methods import busy_share, equal_speed, factory  # noqa: E402
from synthfactory.engines import create_engine  # noqa: E402
from synthfactory.inputs.seeds import load_seeds  # noqa: E402
from synthfactory.methods import method_for  # noqa: E402
from synthfactory.methods.base import run_rounds  # noqa: E402
from synthfactory.recipe import load_recipe  # noqa: E402
from synthfactory.run.plan import plan_run  # noqa: E402
from synthfactory.store import DatasetStore  # noqa: E402
from synthfactory.verify.base import Claim, Verifier  # noqa: E402
from synthfactory.verify.math_answer import MathAnswerVerifier  # noqa: E402
from synthfactory.verify.python_tests import PythonTestsOptions, PythonTestsVerifier  # noqa: E402
from synthfactory.verify.sandbox import SANDBOX_ENV, base_python, run_python, sandbox_kind  # noqa: E402

MATH_RECIPE = ROOT / "recipes" / "math.yaml"
SEEDS = ROOT / "recipes" / "seeds"


# --- 1. rows per second per core ----------------------------------------------------------------

def math_claims(rows: int) -> list[tuple[Claim, bool]]:
    """Right and wrong worked answers to the shipped math seeds, alternating: (claim, should pass)."""
    seeds = [json.loads(line) for line in (SEEDS / "math.jsonl").read_text().splitlines() if line.strip()]
    claims = []
    for index in range(rows):
        seed = seeds[(index // 2) % len(seeds)]
        right = index % 2 == 0
        value = Fraction(seed["answer"]) + (0 if right else 1)
        shown = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        claims.append((Claim(response=f"The numbers give {shown}.\nAnswer: {shown}", seed=seed,
                             prompt=seed["question"]), right))
    return claims


def code_claims(rows: int) -> list[tuple[Claim, bool]]:
    """The shipped code seeds answered by their reference solution (right) or by a function that
    returns None (wrong; make_code.check() proves every seed's tests reject it), alternating."""
    spec = importlib.util.spec_from_file_location("make_code", SEEDS / "make_code.py")
    assert spec is not None and spec.loader is not None
    make_code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_code)
    seeds = {s["name"]: s for s in make_code.seeds()}
    problems = list(make_code.PROBLEMS)
    claims = []
    for index in range(rows):
        name, signature, _, reference, _ = problems[(index // 2) % len(problems)]
        right = index % 2 == 0
        code = reference if right else f"def {signature}:\n    return None\n"
        claims.append((Claim(response=f"Here is the function.\n\n```python\n{code}```\n", seed=seeds[name]), right))
    return claims


def rows_per_second(verifier: Verifier, claims: list[tuple[Claim, bool]]) -> tuple[float, float, str]:
    """(rows per wall second on one thread, rows per CPU-second of this process, checks) after one
    warm-up row. A sandbox's CPU is not in the second figure: bubblewrap's pid namespace keeps it
    out of this process's children's usage."""
    verifier.verify(claims[0][0])  # imports (math-verify, sympy) and caches: not per-row cost
    started, cpu = time.perf_counter(), time.process_time()
    verdicts = [verifier.verify(claim) for claim, _ in claims]
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    wrong = [(c.response[-60:], v.reason)
             for (c, expected), v in zip(claims, verdicts, strict=True) if v.passed != expected]
    if wrong:
        sys.exit(f"{verifier.name}: {len(wrong)} verdicts differ from the constructed truth, e.g. {wrong[:3]}")
    passed = sum(v.passed for v in verdicts)
    return len(claims) / wall, len(claims) / used, f"{passed} passed, {len(claims) - passed} failed, as constructed"


def parallel_rows_per_second(claims: list[tuple[Claim, bool]], workers: int) -> float:
    """python_tests as the verify stage runs it locally: `workers` threads, one sandbox each."""
    verifier = PythonTestsVerifier(PythonTestsOptions(workers=workers, where="local"))
    started = time.perf_counter()
    verifier.verify_many([claim for claim, _ in claims])
    return len(claims) / (time.perf_counter() - started)


# --- 2. the sandbox's start cost ----------------------------------------------------------------

def per_start(run: Callable[[], Any], starts: int) -> float:
    """Median wall milliseconds of `run` over `starts` runs, after one warm-up."""
    run()
    times = []
    for _ in range(starts):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def sandbox_starts(starts: int) -> dict[str, float | None]:
    """Milliseconds per row for a one-line program in each way of running it."""
    program = "print('ok')"
    exe, _ = base_python()

    def sandboxed() -> None:
        result = run_python(program)
        assert result.status == "ok" and result.stdout_tail.strip() == "ok", result

    def plain() -> None:
        done = subprocess.run([exe, "-I", "-S", "-c", program], capture_output=True, timeout=30)
        assert done.stdout.strip() == b"ok", done

    forced = os.environ.pop(SANDBOX_ENV, None)
    logging.getLogger("synthfactory.verify.sandbox").setLevel(logging.ERROR)  # the forced fallback's warning
    try:
        bwrap = per_start(sandboxed, starts) if sandbox_kind()[0] == "bubblewrap" else None
        os.environ[SANDBOX_ENV] = "rlimits"
        rlimits = per_start(sandboxed, starts)
    finally:
        os.environ.pop(SANDBOX_ENV, None)
        if forced is not None:
            os.environ[SANDBOX_ENV] = forced
    return {"bubblewrap": bwrap, "rlimits": rlimits, "plain": per_start(plain, starts)}


# --- 3. factory vs raw engine on the math recipe ------------------------------------------------

_worker: dict[str, Any] = {}


def _load(recipe_path: str, batches: int, batch_size: int) -> None:
    """Once per engine process, outside the timed work: the generator's engine and the method."""
    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    _worker.update(engine=create_engine(plan.generator), method=method_for(loaded.recipe))


def _timed_chat(requests: list) -> list:
    started = time.perf_counter()
    try:
        return _worker["engine"].chat(requests)
    finally:
        _worker["busy"] = _worker.get("busy", 0.0) + time.perf_counter() - started


def _run_batch(items: list) -> tuple[int, float]:
    """One batch as the factory's engines see it: each round in one call (no judge: the recipe
    has none). Returns the requests sent and the engine's busy seconds."""
    _worker["busy"] = 0.0
    _, sent = run_rounds(_worker["method"], items, _timed_chat)
    return sent, _worker["busy"]


def raw_engine(recipe: Path, batches: int, batch_size: int, replicas: int) -> tuple[float, int, float]:
    """(wall seconds, requests, engine busy seconds) of the plan's generation on `replicas` processes."""
    loaded = load_recipe(recipe, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    started = time.perf_counter()  # engine loads included, as the factory's wall includes its own
    with ProcessPoolExecutor(replicas, mp_context=get_context("spawn"), initializer=_load,
                             initargs=(str(recipe), batches, batch_size)) as pool:
        done = [f.result() for f in [pool.submit(_run_batch, list(b.items)) for b in plan.batches]]
    return time.perf_counter() - started, sum(n for n, _ in done), sum(s for _, s in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=128, help="math seeds the factory runs (2 samples each)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows", type=int, default=200, help="constructed rows per verifier (half right)")
    parser.add_argument("--starts", type=int, default=40, help="sandbox starts per way of running")
    parser.add_argument("--replicas", type=int, default=os.cpu_count(),
                        help="engine processes on the raw side; the factory's default is one per CPU")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 16 seeds, 20 rows, 5 starts")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.rows, args.starts = 16, 20, 5

    cores = os.cpu_count() or 1
    for name, verifier, claims in (("math_answer", MathAnswerVerifier(), math_claims(args.rows)),
                                   ("python_tests", PythonTestsVerifier(PythonTestsOptions(workers=1, where="local")),
                                    code_claims(args.rows))):
        wall_rate, cpu_rate, checks = rows_per_second(verifier, claims)
        line = f"{name:<13} {len(claims)} constructed rows ({checks}): {wall_rate:.1f} rows/s on one thread"
        if name == "python_tests":
            line += (f" (one sandbox at a time; this process's own CPU: {cpu_rate:.0f} rows per CPU-second); "
                     f"{cores} threads, the stage's local default: "
                     f"{parallel_rows_per_second(claims, cores):.1f} rows/s; "
                     f"sandbox {sandbox_kind()[0]}")
        else:
            line += f" ({cpu_rate:.1f} rows per CPU-second)"
        print(line, flush=True)

    starts = sandbox_starts(args.starts)
    plain = starts["plain"]
    shown = [f"{kind} {ms:.1f} ms ({ms / plain:.2f}x plain)" if ms is not None else f"{kind} n/a"
             for kind, ms in starts.items() if kind != "plain"]
    print(f"sandbox start per row (median of {args.starts}, `print('ok')`): {', '.join(shown)}; "
          f"plain `python -I -S` subprocess {plain:.1f} ms", flush=True)

    batches = max(1, args.seeds * 2 // args.batch_size)  # the recipe's samples_per_seed: 2
    with tempfile.TemporaryDirectory() as tmp:
        fac_s, summary = factory(MATH_RECIPE, Path(tmp) / "store", batches, args.batch_size)
        published = DatasetStore(Path(tmp) / "store" / load_recipe(MATH_RECIPE).recipe.name).versions()
        verified = {name: f"{r.passed}/{r.checked} passed"
                    for name, r in (published[-1].metadata.verification.items() if published else [])}
    raw_s, raw_requests, raw_busy = raw_engine(MATH_RECIPE, batches, args.batch_size, args.replicas)
    print(f"math         {batches * args.batch_size} generations ({args.seeds} seeds x 2): raw engine {raw_requests} "
          f"requests in {raw_s:.1f}s (engines busy {raw_busy:.1f}s, share {raw_busy / (raw_s * args.replicas):.3f}); "
          f"factory {summary.get('engine_requests')} requests in {fac_s:.1f}s wall (flow {summary.get('seconds')}s, "
          f"engines busy {summary.get('engine_busy_seconds')}s, busy share {busy_share(summary)}, "
          f"verified {json.dumps(verified) if verified else 'n/a'}, accepted {summary.get('accepted')}); "
          f"ratio factory/raw {fac_s / raw_s:.3f}  (target <= 1.10); flow alone/raw "
          f"{(summary.get('seconds') or 0) / raw_s:.3f}; "
          f"at equal engine speed {equal_speed(fac_s, summary, raw_s, raw_busy)}",
          flush=True)


if __name__ == "__main__":
    main()
