"""tok/s of the bundled model under each llama.cpp build and load option, measured in one run.

Options: the llama-cpp-python of each interpreter given (this venv's portable build, and e.g. a
natively built one in another venv), each loaded with llama.cpp's extra buffer types on (the
default) and off (`use_extra_bufts=False`, what the engine does when the build has AMX). Each
option runs in its own process, one thread, the same prompts and seeds, alternating rounds so
drift on a noisy machine hits every option alike. A crash (e.g. SIGSEGV on an AMX CPU with a
native build) is reported as such.

    .venv/bin/python bench/llama_build.py [--python /path/to/other/venv/bin/python ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])  # the core's own load-params wrap and build report, in any venv with llama_cpp
import llama_cpp
from synthfactory.engines.llamacpp import _model_params, build_info
model, extra, requests = sys.argv[1], sys.argv[2] == "on", int(sys.argv[3])
with _model_params(use_extra_bufts=extra):
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
topics = ["why the sky is blue", "how tides work", "recursion", "compound interest", "plate tectonics",
          "how vaccines work", "what DNA does", "why bread rises"]
tokens, started = 0, time.perf_counter()
for i in range(requests):
    out = llm.create_chat_completion(messages=[{"role": "user", "content": f"Explain {topics[i % len(topics)]}."}],
                                     max_tokens=96, temperature=0.7, seed=i)
    tokens += out["usage"]["completion_tokens"]
info = build_info()
print(json.dumps({"tokens": tokens, "seconds": time.perf_counter() - started, "amx": info["amx"],
                  "avx512": any(name.startswith("AVX512") for name in info["features"])}))
"""


def measure(python: str, model: str, extra: bool, requests: int) -> dict:
    done = subprocess.run([python, "-c", CHILD, model, "on" if extra else "off", str(requests), str(ROOT)],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"crashed": done.returncode, "detail": (done.stderr.strip().splitlines() or [""])[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", action="append", default=[], help="another interpreter with llama-cpp-python")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from synthfactory.engines.llamacpp import resolve_model_path

    model = str(resolve_model_path("smollm2-135m-instruct"))
    options = [(python, extra) for python in [sys.executable, *args.python] for extra in (True, False)]
    totals = {option: {"tokens": 0, "seconds": 0.0} for option in options}
    notes: dict = {}
    for _ in range(args.rounds):
        for option in options:
            result = measure(option[0], model, option[1], args.requests)
            if "crashed" in result:
                notes[option] = f"crashed (exit {result['crashed']}): {result['detail']}"
                continue
            totals[option]["tokens"] += result["tokens"]
            totals[option]["seconds"] += result["seconds"]
            notes.setdefault(option, f"build: AVX-512 {'yes' if result['avx512'] else 'no'}, "
                                     f"AMX {'yes' if result['amx'] else 'no'}")
    base = totals[options[0]]["tokens"] / totals[options[0]]["seconds"] if totals[options[0]]["seconds"] else None
    print(f"{'interpreter':<40} {'extra bufts':>11} {'tok/s':>8} {'ratio':>6}  notes")
    for option in options:
        t = totals[option]
        rate = t["tokens"] / t["seconds"] if t["seconds"] else None
        ratio = f"{rate / base:.3f}" if rate and base else "-"
        print(f"{option[0][-40:]:<40} {'on' if option[1] else 'off':>11} "
              f"{(f'{rate:.1f}' if rate else '-'):>8} {ratio:>6}  {notes.get(option, '')}")


if __name__ == "__main__":
    main()
