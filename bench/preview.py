"""How good is `synthfactory preview`'s estimate? Preview a recipe, then run it in full on a
fresh store, and compare what the preview said one accepted row would cost with what the run
measured (engine-seconds and tokens per accepted row; wall time of the batches too).

Both sides are the real CLI (preview: Ray + llama.cpp; run: Prefect flow + Ray + llama.cpp).
A ratio is preview estimate / run measurement: 1.0 is exact, the issue's bar is within 2x.

    .venv/bin/python bench/preview.py [--recipe recipes/quickstart.yaml] [--rows 5] [--target-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> tuple[dict, float]:
    exe = Path(sys.executable).parent / "synthfactory"
    started = time.perf_counter()
    done = subprocess.run([str(exe), *args, "--json"], capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "quickstart.yaml"))
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--target-rows", type=int, default=None)
    args = parser.parse_args()
    target = ["--target-rows", str(args.target_rows)] if args.target_rows else []
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        store = str(Path(tmp) / "store")
        preview, preview_s = cli("preview", args.recipe, "--store", store, "--rows", str(args.rows), *target)
        run, run_s = cli("run", args.recipe, "--store", store, *target)
    est, cost = preview["estimate"], run["cost"]
    measured = cost["per_accepted_row"]
    rows = [
        ("acceptance rate", est["acceptance_rate"], run["accepted"] / run["generated"] if run["generated"] else None),
        ("engine-seconds per accepted row", est["engine_seconds_per_accepted_row"], measured["engine_seconds"]),
        ("tokens per candidate", est["tokens_per_candidate"], cost["tokens"] / run["generated"]),
        ("engine-seconds (run)", est["engine_seconds"], cost["engine_seconds"]),
        ("tokens (run)", est["tokens"], cost["tokens"]),
    ]
    print(f"recipe {Path(args.recipe).name}: preview of {est['previewed']} rows took {preview_s:.1f}s "
          f"(incl. Ray start and model load); the run took {run_s:.1f}s and accepted {run['accepted']} "
          f"of {run['generated']}")
    print(f"{'':<34} {'preview':>10} {'run':>10} {'ratio':>7}")
    for name, guess, real in rows:
        ratio = guess / real if guess and real else None
        print(f"{name:<34} {guess if guess is not None else 'n/a':>10} {round(real, 4) if real else 'n/a':>10} "
              f"{f'{ratio:.2f}' if ratio else 'n/a':>7}")
    print(json.dumps({"preview_seconds": round(preview_s, 1), "run_seconds": round(run_s, 1),
                      **{name.replace(" ", "_"): {"preview": g, "run": r, "ratio": (g / r if g and r else None)}
                         for name, g, r in rows}}))


if __name__ == "__main__":
    main()
