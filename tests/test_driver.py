"""The run driver on the core's local executor, with a stub engine pool (a chat function that
answers at once): plan, the stage line, staging and resume, the failure rule and publish on the
real GX suite and Delta table, in seconds. No Prefect anywhere on this path. The driver on the
bundled model, and the same rows through the Prefect flow, are in test_factory.py."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from synthfactory import load_dataset_version
from synthfactory.engines.base import ChatResult
from synthfactory.errors import EngineFailure, RecipeError, ValidationGateError
from synthfactory.model.batch import BatchState
from synthfactory.model.metadata import EngineStats
from synthfactory.recipe import load_recipe
from synthfactory.run.driver import drive_run
from synthfactory.run.executor import LocalExecutor
from synthfactory.run.staging import read_staged, stage_key, write_staged
from synthfactory.store import DatasetStore
from tests.conftest import ROOT, make_recipe

FAST = {"grading__method": "logprobs", "quality__embeddings": False}  # no embedding model to load


def _suite() -> dict:
    """The quickstart suite without what needs real generations or embeddings."""
    suite = json.loads((ROOT / "expectations" / "quickstart.json").read_text())
    suite["expectations"] = [e for e in suite["expectations"] if e["type"] != "expect_column_mean_to_be_between"
                             and e["kwargs"].get("column") != "batch_embedding_diversity"]
    return suite

WORDS = ("light water energy moves through small parts of every system and changes how each layer works "
         "because heat pressure and time shape the result while people measure patterns in nature over "
         "many years using simple tools careful notes clear models strong evidence new questions old "
         "ideas cells plants animals stars rocks rivers clouds wind sound signals numbers steps rules "
         "growth balance force motion speed distance surface depth color shape size weight").split()


class StubPool:
    """An engine pool that answers every request at once: a fixed explanation, and P(yes) = 0.9 to
    every judge question. `fail_on_call` makes that call (1-based) raise, as a lost engine does."""

    replicas = [{"model": "stub", "node_id": "stub-node-00000000", "load_seconds": 0.0}]
    requests_batched = 0  # like llama.cpp: the run keeps 2 x replicas + 2 batches in flight

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = self.requests = self.generation_requests = 0
        self.fail_on_call = fail_on_call
        self.shut_down = False
        self._lock = threading.Lock()

    def chat(self, spec, requests):
        with self._lock:
            self.calls += 1
            self.requests += len(requests)
            self.generation_requests += sum(r.logprobs is None for r in requests)
            if self.calls == self.fail_on_call:
                raise EngineFailure("engine llamacpp (model stub): replica lost")
        return [self._yes() if r.logprobs else ChatResult(
            text=self.explain(r.messages[-1]["content"]), finish_reason="stop", prompt_tokens=12,
            completion_tokens=20, latency_s=0.01) for r in requests]

    @staticmethod
    def explain(prompt: str) -> str:
        """Two plain English sentences of their own per prompt (distinct enough that no screen
        calls two of them near duplicates), the same every time for the same prompt."""
        rng = random.Random(prompt)
        first, second = (" ".join(rng.sample(WORDS, 9)) for _ in range(2))
        return f"The {first} matters here. Then {second} follows from it."

    @staticmethod
    def _yes() -> ChatResult:
        top = [{"token": "Yes", "logprob": math.log(0.9)}, {"token": "No", "logprob": math.log(0.1)}]
        return ChatResult(text="Yes", finish_reason="length", prompt_tokens=10, completion_tokens=1,
                          latency_s=0.01, logprobs=[{"token": "Yes", "logprob": top[0]["logprob"], "top": top}])

    def stats(self) -> EngineStats:
        return EngineStats(replicas=1, requests=self.requests, busy_seconds=0.5, busy_share=0.5, batches_retried=0,
                           nodes=["stub-node"])

    def shutdown(self):
        self.shut_down = True


def _drive(recipe: Path, store: Path, pool: StubPool) -> dict:
    """The driver on the local executor with one worker thread (stages run in the order they became
    ready, so a failure lands at the same point every time) and the stub pool for engines."""
    loaded = load_recipe(recipe)
    dataset = DatasetStore.for_recipe(store, loaded.recipe.name)
    executor = LocalExecutor(dataset.staging_path, workers=1)
    try:
        with executor.lock(dataset):
            return drive_run(loaded, dataset, executor, time.perf_counter(), engines=lambda specs: pool)
    finally:
        executor.close(wait=True)  # stages still running finish before the test looks at the staging


def test_local_driver_runs_the_stage_line_and_publishes_one_version(tmp_path):
    recipe = make_recipe(tmp_path, suite=_suite(), batches__count=3, batches__size=4, **FAST)
    pool = StubPool()
    summary = _drive(recipe, tmp_path / "store", pool)

    assert summary["version"] == 1 and summary["batches"] == 3 and summary["generated"] == 12
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    assert summary["batches_resumed"] == 0 and pool.shut_down
    ds = load_dataset_version(tmp_path / "store" / "tiny")
    assert ds.num_rows == summary["accepted"] > 0 and len(set(ds["id"])) == ds.num_rows
    meta = DatasetStore(tmp_path / "store" / "tiny").versions()[-1].metadata
    meta = meta if isinstance(meta, dict) else meta.as_commit()  # the commit's JSON keys
    assert meta["prefect_flow_run_id"] is None and meta["engine_requests"] == pool.requests
    assert meta["suite"] and meta["stopped"] == "complete"
    # the run's facts (`RunFacts`) under the flat keys the commit always held
    assert {k: meta[k] for k in ("engine_replicas", "engine_busy_seconds", "engine_busy_share", "engine_nodes",
                                 "engine_batches_retried", "batches_planned", "target_rows", "budget")} == {
        "engine_replicas": 1, "engine_busy_seconds": 0.5, "engine_busy_share": 0.5, "engine_nodes": ["stub-node"],
        "engine_batches_retried": 0, "batches_planned": 3, "target_rows": None, "budget": None}
    assert meta["dataset_uri"] == summary["dataset"] and meta["recipe"]["name"] == "tiny" and meta["published"]
    assert meta["engines_ready_seconds"] >= 0 and meta["first_batch_seconds"] >= meta["engines_ready_seconds"]
    assert not (tmp_path / "store" / "tiny" / "_staging").exists(), "staged stages are cleared once published"
    # the report's stage table reads the registered line, in order, and reconciles with the totals
    from synthfactory.publish.report import run_report_markdown
    from synthfactory.registry import STAGES

    version = DatasetStore(tmp_path / "store" / "tiny").versions()[-1].metadata
    table = run_report_markdown(version).split("## Where rows left the line")[1].split("##")[0]
    stages = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert stages[1:1 + len(STAGES)] == list(STAGES.names)
    assert sum(version.totals.left_at.values()) == summary["rejected"] + summary["quarantined"]


def test_a_failed_local_run_resumes_from_its_staged_stages_and_publishes_the_same_rows(tmp_path):
    recipe = make_recipe(tmp_path, suite=_suite(), batches__count=3, batches__size=4, **FAST)
    clean = _drive(recipe, tmp_path / "clean", StubPool())
    clean_rows = load_dataset_version(tmp_path / "clean" / "tiny")

    # generation calls come first (one per batch, in plan order on one worker): the third one fails
    with pytest.raises(EngineFailure, match="replica lost"):
        _drive(recipe, tmp_path / "store", StubPool(fail_on_call=3))
    staged = [p.name for p in (tmp_path / "store" / "tiny" / "_staging").iterdir()]
    finished = {stage: {k.rsplit("-", 1)[0] for k in staged if k.endswith(f"-{stage}")}
                for stage in ("generate", "validate")}
    assert len(finished["generate"]) == 2, staged
    assert not DatasetStore(tmp_path / "store" / "tiny").versions()

    again = StubPool()
    summary = _drive(recipe, tmp_path / "store", again)
    assert summary["batches_resumed"] == len(finished["validate"])
    assert again.generation_requests == 4, "only the batch whose generation failed is generated again"
    rows = load_dataset_version(tmp_path / "store" / "tiny")
    assert rows.num_rows == clean["accepted"] > 0
    assert sorted(zip(rows["id"], rows["text"], strict=True)) == sorted(
        zip(clean_rows["id"], clean_rows["text"], strict=True))


def test_on_failure_fail_stops_the_local_run_unpublished(tmp_path):
    suite = json.loads((ROOT / "expectations" / "quickstart.json").read_text())
    suite["expectations"] = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 0}}]
    recipe = make_recipe(tmp_path, suite=suite, batches__count=1, validation__on_failure="fail", **FAST)
    pool = StubPool()
    with pytest.raises(ValidationGateError, match="failed their suite"):
        _drive(recipe, tmp_path / "store", pool)
    assert pool.shut_down and DatasetStore(tmp_path / "store" / "tiny").versions() == []


def test_a_suite_gx_cannot_build_stops_the_run_before_any_engine_starts(tmp_path):
    suite = {"name": "bad", "expectations": [{"type": "expect_column_values_to_be_ocean_blue",
                                              "kwargs": {"column": "text"}}]}
    recipe = make_recipe(tmp_path, suite=suite, **FAST)
    started: list = []

    def engines(specs):
        started.append(specs)
        return StubPool()

    loaded = load_recipe(recipe)
    dataset = DatasetStore.for_recipe(tmp_path / "store", loaded.recipe.name)
    executor = LocalExecutor(dataset.staging_path, workers=1)
    try:
        with pytest.raises(RecipeError, match="validation.suite"):
            drive_run(loaded, dataset, executor, time.perf_counter(), engines=engines)
    finally:
        executor.close(wait=True)
    assert started == []


def test_staged_stages_are_the_cores_format_and_the_previous_format_still_resumes(tmp_path):
    """What a finished stage keeps is the core's (synthfactory.run.staging), whichever executor wrote
    it; a stage staged in the previous format (Prefect's result record, with the batch state under
    its old module) is still read, so a run begun before the change resumes."""
    import base64
    import pickle

    state = BatchState("abc123", 0, "generated", rows=[{"id": "r1", "source": "synthetic"}], engine_seconds=1.5)
    write_staged(tmp_path, stage_key("abc123", "generate"), state)
    record = json.loads((tmp_path / "abc123-generate").read_text())
    assert record["format"] == "synthfactory-staging" and record["version"] == 2 and record["key"] == "abc123-generate"
    assert read_staged(tmp_path, "abc123-generate") == state

    # version 1: Prefect's result record of a pickled synthfactory.run.batch.BatchState
    old = pickle.dumps(state, protocol=0).replace(b"synthfactory.model.batch", b"synthfactory.run.batch")
    (tmp_path / "abc123-grade").write_text(json.dumps({
        "metadata": {"storage_key": str(tmp_path / "abc123-grade"), "expiration": None,
                     "serializer": {"type": "pickle", "picklelib": "cloudpickle", "picklelib_version": None},
                     "prefect_version": "3.8.8", "storage_block_id": None},
        "result": base64.encodebytes(old).decode()}))
    assert read_staged(tmp_path, "abc123-grade") == state

    (tmp_path / "abc123-screen").write_text("{torn")
    (tmp_path / "abc123-verify").write_text(json.dumps({"format": "synthfactory-staging", "version": 99}))
    assert read_staged(tmp_path, "abc123-screen") is None and read_staged(tmp_path, "missing") is None
    assert read_staged(tmp_path, "abc123-verify") is None  # a format from the future: run it again


def test_the_local_path_imports_no_prefect(tmp_path):
    """`run --no-prefect` and `run_recipe` must work where Prefect is not installed: a `prefect`
    that cannot be imported stands in for it."""
    blocker = tmp_path / "blocked" / "prefect"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('prefect imported on the local path')\n")
    code = ("import synthfactory.cli, synthfactory.run.driver, synthfactory.run.executor, "
            "synthfactory.engines.session, synthfactory.engines.doctor, synthfactory.quality.validation, "
            "synthfactory.quality.guards, synthfactory.run.commit, synthfactory.run.stages; "
            "from synthfactory import run_recipe; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": f"{blocker.parent}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_window_fills_a_batching_engine_and_stays_small_for_one_at_a_time_engines():
    from synthfactory.run.driver import MAX_WINDOW, batch_window

    assert batch_window(2, 0, 8) == 6  # llama.cpp: two batches per replica and two more
    assert batch_window(1, 256, 8) == MAX_WINDOW  # vLLM takes 256 requests at once: 32 batches of 8
    assert batch_window(1, 256, 64) == 4 and batch_window(1, 256, 256) == 4
