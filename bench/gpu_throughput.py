"""vLLM throughput: raw `vllm.LLM` vs the whole factory, same model, same prompts, same sampling.

Run on one GPU machine (Linux, CUDA) with both environments, the factory's and vLLM's (they cannot
be one: vLLM 0.23+ and Prefect 3.8 need different fastapi), the model from a local path or the HF
cache:

    make install gpu-env
    SYNTHFACTORY_VLLM_PYTHON=.venv-gpu/bin/python .venv/bin/python bench/gpu_throughput.py \
        --model /models/Qwen2.5-0.5B-Instruct --samples 1024 --batch-size 256

Raw side (a child process in the vLLM environment, so its GPU memory is freed before the factory
starts; the factory's vLLM replicas run there too, through SYNTHFACTORY_VLLM_PYTHON): the quickstart
recipe's generation prompts in one `LLM.chat` call, then its logprob-judge prompts for those
outputs in a second one; output tokens/s = completion tokens of both / their wall time.
Factory side: `synthfactory run` of the same recipe with `engine: vllm` (CLI, Prefect, Ray actor
per GPU, GX gate, Delta commit); output tokens/s = the version's completion tokens (generation +
judge, from its commit metadata) / the flow's wall time after the engines are up. Prints both, the
ratio (target >= 0.90) and the engine busy fraction (busy engine-seconds / (flow seconds x replicas)).
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def write_recipe(folder: Path, model: str, tensor_parallel: int) -> Path:
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    recipe["generation"]["engine"] = "vllm"
    recipe["generation"]["model"] = model
    recipe["generation"]["options"] = {"tensor_parallel_size": tensor_parallel, "context_length": 4096}
    recipe["grading"].pop("engine", None)
    recipe["grading"].pop("model", None)
    recipe["grading"].pop("options", None)
    recipe["grading"]["method"] = "logprobs"
    recipe["grading"].pop("judges", None)  # the LLM judge alone: this bench measures engine throughput
    recipe["grading"].pop("aggregate", None)
    for key in ("seeds", "validation"):  # keep the recipe's files where they are
        section = recipe[key]
        for field in ("path", "suite"):
            if field in section:
                section[field] = str((ROOT / "recipes" / section[field]).resolve())
    path = folder / "gpu_bench.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def raw(recipe_path: str, batches: int, batch_size: int) -> None:
    """Child process: the factory's exact requests straight into one vllm.LLM; prints one JSON line."""
    from synthfactory.engines.base import ChatRequest, EngineSpec
    from synthfactory.engines.vllm import VLLMEngine
    from synthfactory.grading import make_judge
    from synthfactory.run.plan import plan_run
    from synthfactory.recipe import load_recipe
    from synthfactory.inputs.seeds import load_seeds

    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    recipe = loaded.recipe
    sampling, judge = recipe.generation.sampling, make_judge(recipe.grading)
    engine = VLLMEngine(EngineSpec("vllm", recipe.generation.model, recipe.generation.options))
    items = [item for batch in plan.batches for item in batch.items]
    warm = engine.chat([ChatRequest(messages=items[0].messages, max_tokens=8)])  # compile, allocate
    del warm
    started = time.perf_counter()
    generated = engine.chat([ChatRequest(messages=i.messages, max_tokens=sampling.max_tokens,
                                         temperature=sampling.temperature, top_p=sampling.top_p,
                                         seed=i.sampling_seed) for i in items])
    judged = engine.chat([r for item, g in zip(items, generated) for r in judge.requests(item.prompt, g.text, 0)])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "tokens": sum(r.completion_tokens for r in generated + judged),
                      "samples": len(items)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a local model folder or a HF id in the local cache")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256,
                        help="vLLM batches continuously within a call: big batches keep the GPU full")
    parser.add_argument("--tensor-parallel", type=int, default=1)
    parser.add_argument("--raw", metavar="RECIPE", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    batches = max(1, args.samples // args.batch_size)
    if args.raw:
        raw(args.raw, batches, args.batch_size)
        return

    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp), args.model, args.tensor_parallel)
        engine_python = os.environ.get("SYNTHFACTORY_VLLM_PYTHON") or sys.executable
        child = subprocess.run([engine_python, __file__, "--model", args.model, "--samples", str(args.samples),
                                "--batch-size", str(args.batch_size), "--raw", str(recipe)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
        if child.returncode != 0:
            sys.exit(f"raw vLLM side failed (exit {child.returncode}); is vllm in {engine_python}?")
        raw_result = json.loads(child.stdout.strip().splitlines()[-1])
        raw_rate = raw_result["tokens"] / raw_result["seconds"]
        print(f"raw vllm.LLM : {raw_result['samples']} samples, {raw_result['tokens']} output tokens in "
              f"{raw_result['seconds']:.1f}s = {raw_rate:,.0f} tok/s", flush=True)

        store = Path(tmp) / "store"
        done = subprocess.run([sys.executable, "-m", "synthfactory.cli", "run", str(recipe), "--store", str(store),
                               "--batches", str(batches), "--batch-size", str(args.batch_size), "--json"],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            sys.exit(f"factory run failed:\n{done.stderr[-3000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        from synthfactory.store import DatasetStore

        meta = DatasetStore(summary["dataset"]).versions()[-1].metadata
        working = summary["seconds"] - (summary["engines_ready_seconds"] or 0.0)
        tokens = meta.cost.completion_tokens
        rate = tokens / working
        replicas = meta.engines.replicas or 1
        busy = summary["engine_busy_seconds"] / (working * replicas)
        print(f"factory      : {summary['generated']} samples, {tokens} output tokens in {working:.1f}s after "
              f"engines were up ({summary['seconds']:.1f}s flow) = {rate:,.0f} tok/s; engine busy {busy:.0%}")
        print(f"throughput ratio factory / raw: {rate / raw_rate:.3f}  (target >= 0.90)")


if __name__ == "__main__":
    main()
