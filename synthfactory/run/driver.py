"""The run driver: one recipe, one new version, wherever it executes.

    suite gate -> engines (loading while seeds are read and the run is planned) -> plan
    -> batches admitted by `RunControl`, each through the stage line (`registry.STAGES`) on an executor
    -> recount after dedup when the target is reached -> `validation.on_failure` -> publish once

The driver decides what runs and hands each unit (a function) to an executor
(`synthfactory.run.executor`), which only runs functions: the core's local executor (threads, no
Prefect: `run_recipe`, `synthfactory run --no-prefect`) or Prefect's in `flows/` (the
`synthfactory` flow). Finished stages are staged in the core's format under the same keys on
either, so either resumes a run the other began.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from synthfactory.errors import NothingToPublishError, ValidationGateError
from synthfactory.model.batch import BatchState, synthetic
from synthfactory.model.chat import EngineSpec
from synthfactory.model.context import RunContext
from synthfactory.model.cost import Prices, batch_spend
from synthfactory.model.facts import RunFacts
from synthfactory.model.metadata import VersionMetadata
from synthfactory.model.plan import BatchPlan
from synthfactory.recipe import LoadedRecipe, load_recipe
from synthfactory.run import progress
from synthfactory.run.commit import publish_run
from synthfactory.run.control import RunControl
from synthfactory.run.executor import ENGINE_RETRIES, Executor, LocalExecutor
from synthfactory.run.plan import engine_specs_for, plan_run, run_seeds
from synthfactory.run.progress import RunProgress
from synthfactory.run.results import run_summary
from synthfactory.run.stages import BatchWork, Stage, stage_line
from synthfactory.run.staging import is_staged, stage_key
from synthfactory.storage import Location
from synthfactory.store import DatasetStore


def run_recipe(recipe_path: str | Path, store: str | Path = "store", *, batches: int | None = None,
               batch_size: int | None = None, target_rows: int | None = None,
               executor: Executor | None = None, quiet: bool = True) -> dict[str, Any]:
    """Run a recipe end to end and publish one new version, with no Prefect server: what
    `synthfactory run --no-prefect` does, for notebooks and tests. Returns the run's summary (the
    `--json` line). Ray is joined (RAY_ADDRESS) or started, and stopped after if started here."""
    from synthfactory.engines.session import ray_session

    started = time.perf_counter()
    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size, target_rows=target_rows)
    dataset = DatasetStore.for_run(store, loaded.recipe)
    local = executor or LocalExecutor(dataset.staging_path)
    try:
        with ray_session(quiet=quiet), local.lock(dataset):
            return drive_run(loaded, dataset, local, started)
    finally:
        if executor is None:
            assert isinstance(local, LocalExecutor)  # the one made above
            local.close()


class RunWatcher(Protocol):
    """Whoever watches a run besides its log (Prefect: the run's name, tags and artifacts)."""

    def planned(self, context: RunContext) -> None: ...

    def progressed(self, fraction: float) -> None: ...

    def finished(self, metadata: VersionMetadata) -> None: ...


def start_engines(specs: list[EngineSpec]) -> Any:
    """Every replica of the run's engines, started and past its start check (an `EnginePool`)."""
    from synthfactory.engines.pool import EnginePool

    return EnginePool(specs)


def drive_run(loaded: LoadedRecipe, dataset: DatasetStore, executor: Executor, started: float, *,
              engines: Callable[[list[EngineSpec]], Any] = start_engines,
              watcher: RunWatcher | None = None) -> dict[str, Any]:
    """Start engines, plan, run every admitted batch, publish: the whole run, under the dataset's
    lock (the caller holds it). `started` is when the run began (`time.perf_counter`); `engines`
    starts the engine pool (a stub in fast tests)."""
    from synthfactory.quality.guards import QualityGuards
    from synthfactory.quality.validation import SuiteGate, failed_with_rows
    from synthfactory.storage.check import check_store

    log = executor.log
    recipe = loaded.recipe
    check_store(dataset.uri, dataset.options)  # a wrong key or endpoint: one line, before any engine starts
    # the suite first: a suite GX cannot build stops the run before any engine starts
    gate = SuiteGate(loaded.suite_path, docs_dir=dataset.data_docs_path)
    line = stage_line()
    progress.report(RunProgress("engines"))
    # models load and pass their start check while seeds are read and the run is planned: an
    # engine that cannot run stops the run before any batch is sent to it
    starting = executor.submit(engines, engine_specs_for(loaded), name="start-engines")
    try:
        guards = QualityGuards.for_run(loaded, dataset.index_path, dataset.embeddings_path)
        seeds = executor.submit(run_seeds, loaded, guards, dataset.uri, name="load-seeds").result()
        log.info("seeds: %d usable (%d recycled from published synthetic rows), %d quarantined",
                 len(seeds.rows), sum(s.recycled for s in seeds.rows), len(seeds.quarantined))
        plan = executor.submit(plan_run, loaded, seeds, dataset.next_version(), guards.contaminated_by,
                               name="plan-run").result()
    except BaseException:
        _shut_down_once_started(starting)
        raise
    log.info("run %s: %d batches of up to %d for %s version %d; %d seed rows quarantined", plan.run_id,
             len(plan.batches), recipe.batches.size, dataset.uri, plan.version, len(plan.seeds_quarantined))
    context = RunContext(loaded, plan, dataset.uri, dataset.root)
    if watcher is not None:
        watcher.planned(context)

    pool = starting.result()
    engines_ready = time.perf_counter()
    for replica in pool.replicas:
        log.info("engine %s ready on node %s (loaded in %.1fs)", replica["model"], replica["node_id"][:12],
                 replica["load_seconds"])
    try:
        from synthfactory.quality.versioning import dedup_across_run

        control = RunControl(sizes=[len(b.items) for b in plan.batches], target=recipe.batches.target_rows,
                             limits=recipe.budget.limits(), prices=Prices.from_card(recipe.card),
                             replicas=len(pool.replicas), capped=plan.capped, clock=time.perf_counter,
                             started_at=started)
        loop = BatchLoop(control, executor, BatchWork(context, guards, gate, pool.chat), line, plan.batches,
                         window=batch_window(len(pool.replicas), pool.requests_batched, recipe.batches.size),
                         recount=lambda states: sum(synthetic(s.rows) for s in dedup_across_run(states, guards)),
                         staging=dataset.staging_path, watcher=watcher)
        states = loop.run()
        engine_stats = pool.stats()
    finally:
        pool.shutdown()
    outcome = control.outcome()
    log.info("stopped starting batches: %s%s after %d of %d planned batches", outcome.stopped,
             f" ({control.stopped_by})" if control.stopped_by else "", len(states), len(plan.batches))

    failed = failed_with_rows(states)  # a batch that kept no row (its rows already quarantined) does not stop the run
    if failed and recipe.validation.on_failure == "fail":
        raise ValidationGateError(f"validation.on_failure is 'fail' and batches {failed} failed their suite")
    facts = RunFacts(
        dataset_uri=dataset.uri, **executor.run_ids, batches_resumed=loop.resumed,
        engines=engine_stats.model_copy(update={"busy_seconds": round(engine_stats.busy_seconds or 0.0, 3),
                                                "ready_seconds": round(engines_ready - started, 3)}),
        first_batch_seconds=round(loop.first_accepted_s, 3) if loop.first_accepted_s is not None else None,
        suite=gate.suite.name, stop=outcome,
        recipe=recipe.model_dump(mode="json"),  # for the dataset card; holds no secrets (key env NAMES only)
    )
    target = recipe.batches.target_rows
    progress.report(RunProgress("publishing", len(states), len(plan.batches), loop.accepted, target))
    metadata = executor.submit(publish_run, context, states, dataset, guards, facts, recipe.publish.min_rows,
                               log.info, log.warning, name="publish", retries=ENGINE_RETRIES).result()
    if watcher is not None:
        watcher.finished(metadata)
    if not metadata.published:
        raise NothingToPublishError(metadata.not_published_because)
    if watcher is not None:
        watcher.progressed(1.0)
    progress.report(RunProgress("done", len(states), len(plan.batches), metadata.totals.accepted, target))
    return run_summary(metadata, time.perf_counter() - started)


MAX_WINDOW = 32  # batches in flight at most (each holds its rows and, under Prefect, its stage tasks' threads)


def batch_window(replicas: int, batched: int, batch_size: int) -> int:
    """Batches to keep in flight: two per replica and two more, so none idles between batches;
    for engines that batch (vLLM), enough to fill what they take at once (`batched` requests),
    up to MAX_WINDOW. Measured: vLLM on CPU fed 4 batches of 8 made 0.65 of the tokens/s it made
    with all 96 requests at once (bench/vllm_throughput.py)."""
    return max(2 * replicas + 2, min(MAX_WINDOW, -(-batched // max(1, batch_size))))


@dataclass
class BatchLoop:
    """Admission and collection: keep up to `window` batches in flight through the stage `line`,
    as `control` admits them, each stage a unit submitted to the executor under its staging key;
    count the run's accepted rows as batches finish (recounted after dedup across the run once
    the target is reached: what publish will count)."""

    control: RunControl
    executor: Executor
    work: BatchWork
    line: Sequence[Stage]
    batches: Sequence[BatchPlan]
    window: int
    recount: Callable[[list[BatchState]], int]
    staging: Location | Path | None = None  # where finished stages are kept (None: nowhere)
    watcher: RunWatcher | None = None
    states: list[BatchState] = field(default_factory=list)
    started: list[int] = field(default_factory=list)  # batch indexes, in the order they started
    resumed: int = 0  # batches whose every stage finished in an earlier run
    accepted: int = 0
    first_accepted_s: float | None = None  # run time when the first batch with accepted rows finished

    def submit_batch(self, batch: BatchPlan) -> list[Future[Any]]:
        """Every stage of the line for `batch`, each waiting for the one before (its future)."""
        chain: list[Future[Any]] = []
        holder: Any = batch  # the batch plan, then each stage's future
        for stage in self.line:
            holder = self.executor.submit(run_stage, stage, self.work, holder, name=f"{stage.name}-{batch.batch_index}",
                                          key=stage_key(batch.batch_id, stage.name),
                                          retries=ENGINE_RETRIES if stage.calls_engines else 0)
            chain.append(holder)
        return chain

    def run(self) -> list[BatchState]:
        control, executor, log = self.control, self.executor, self.executor.log
        target, total = control.target, len(self.batches)
        progress.report(RunProgress("batches", 0, total, 0, target))
        chains: dict[Future[Any], list[Future[Any]]] = {}  # a batch's last future -> its every stage's
        done_before: set[Future[Any]] = set()  # last stages an earlier run finished (staged)
        while True:
            while len(chains) < self.window and (index := control.next_batch()) is not None:
                self.started.append(index)
                batch = self.batches[index]
                chain = self.submit_batch(batch)
                if self.staging is not None and is_staged(self.staging, stage_key(batch.batch_id, self.line[-1].name)):
                    done_before.add(chain[-1])
                chains[chain[-1]] = chain
            if not chains:
                return self.states
            done = executor.wait_any(list(chains))
            state = batch_result(chains.pop(done))
            self.states.append(state)
            self.resumed += done in done_before
            mine = synthetic(state.rows)
            self.accepted += mine
            if target is not None and self.accepted >= target:
                self.accepted = self.recount(self.states)
            control.finished(state.batch_index, self.accepted, batch_spend(state))
            if self.watcher is not None:
                self.watcher.progressed(control.fraction(len(self.states)))
            if self.first_accepted_s is None and state.status == "passed" and mine:
                self.first_accepted_s = control.elapsed()
            progress.report(RunProgress("batches", len(self.states), total, self.accepted, target))
            log.info("batch %d/%d %s %s: %d accepted (+%d real), %d rejected, %d quarantined "
                     "(run total: %d accepted%s)", len(self.states), total, state.batch_id, state.status, mine,
                     len(state.rows) - mine, len(state.rejected), len(state.quarantined), self.accepted,
                     f" of {target}" if target else "")


def run_stage(stage: Stage, work: BatchWork, state: Any) -> BatchState:
    """One stage of one batch (the unit the executor runs)."""
    return stage.run(work, state)


def batch_result(chain: list[Future[Any]]) -> BatchState:
    """The batch's last state; if a stage failed, that stage's own exception (the engine's cause),
    not what an executor reports for the stages that were waiting behind it."""
    try:
        return chain[-1].result()
    except BaseException:
        for future in chain:
            if future.done() and not future.cancelled() and (error := future.exception()) is not None:
                raise error from None
        raise


def _shut_down_once_started(engines: Any) -> None:
    """The run failed before it took its engines: stop them once up, so none outlives the run."""
    try:
        engines.result().shutdown()
    except Exception:  # the run's own failure is the one to report
        pass
