"""Scale-out on CPU engines: the same generation work on 1 vs 2 Ray engine replicas, and on 1 vs 2
OpenAI-compatible endpoints (llama-cpp-python servers), in one run; prints tokens/s and the ratios.

Each replica or server runs llama.cpp on one thread. This machine has 2 cores, so 2 is the most
that can help, and the driver, Ray and HTTP share those same cores: expect a ratio under 2.

    .venv/bin/python bench/scaling.py [--requests 48] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import httpx  # noqa: E402

from synthfactory.engines.base import ChatRequest, EngineSpec  # noqa: E402
from synthfactory.engines.llamacpp import resolve_model_path  # noqa: E402

MODEL = "smollm2-135m-instruct"
TOPICS = ["the water cycle", "compound interest", "how bees communicate", "why bread rises", "recursion",
          "how tides work", "what DNA does", "how solar panels work", "plate tectonics", "how vaccines work",
          "binary search", "photosynthesis"]


def workload(n: int, max_tokens: int) -> list[ChatRequest]:
    return [ChatRequest(messages=({"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]} briefly."},),
                        max_tokens=max_tokens, temperature=0.7, seed=i) for i in range(n)]


def ray_replicas(replicas: int, requests: list[ChatRequest], batch: int = 4) -> tuple[float, int]:
    """The factory's pool: batches handed to the least-busy replica, a few in flight per replica."""
    from synthfactory.engines.pool import EnginePool

    spec = EngineSpec("llamacpp", MODEL, {"replicas": replicas, "threads": 1})
    pool = EnginePool([spec])
    try:
        pool.chat(spec, requests[:1])  # warm
        batches = [requests[i:i + batch] for i in range(0, len(requests), batch)]
        started = time.perf_counter()
        with ThreadPoolExecutor(2 * replicas + 2) as threads:
            results = [r for chunk in threads.map(lambda b: pool.chat(spec, b), batches) for r in chunk]
        seconds = time.perf_counter() - started
    finally:
        pool.shutdown()
    return seconds, sum(r.completion_tokens for r in results)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def endpoints(count: int, requests: list[ChatRequest]) -> tuple[float, int]:
    """The `openai` engine over `count` llama-cpp-python servers, one request in flight per server."""
    from synthfactory.engines.openai import OpenAIEngine

    ports = [_free_port() for _ in range(count)]
    servers = [subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model_path(MODEL)), "--model_alias", MODEL,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) for port in ports]
    try:
        for port in ports:
            for _ in range(240):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
        spec = EngineSpec("openai", MODEL, {"base_urls": [f"http://127.0.0.1:{p}/v1" for p in ports],
                                            "max_concurrency": 1, "timeout_s": 300})
        engine = OpenAIEngine(spec)
        engine.chat(requests[:count])  # warm every server
        started = time.perf_counter()
        results = engine.chat(requests)
        seconds = time.perf_counter() - started
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    errors = [r.error for r in results if r.error]
    if errors:
        sys.exit(f"endpoint errors: {errors[:3]}")
    return seconds, sum(r.completion_tokens for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    requests = workload(args.requests, args.max_tokens)

    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rates = {}
    for replicas in (1, 2):
        seconds, tokens = ray_replicas(replicas, requests)
        rates[f"ray{replicas}"] = tokens / seconds
        print(f"Ray, {replicas} engine replica(s): {tokens} tokens in {seconds:.1f}s = {tokens / seconds:.1f} tok/s",
              flush=True)
    ray.shutdown()
    for count in (1, 2):
        seconds, tokens = endpoints(count, requests)
        rates[f"ep{count}"] = tokens / seconds
        print(f"openai engine, {count} endpoint(s): {tokens} tokens in {seconds:.1f}s = {tokens / seconds:.1f} tok/s",
              flush=True)
    print(f"throughput ratio, 2 vs 1 Ray replicas: {rates['ray2'] / rates['ray1']:.2f}x")
    print(f"throughput ratio, 2 vs 1 endpoints   : {rates['ep2'] / rates['ep1']:.2f}x")
    print(f"limit: {os.cpu_count()} cores for everything (engines, Ray, driver, HTTP); "
          "each replica or server decodes on one thread")


if __name__ == "__main__":
    main()
