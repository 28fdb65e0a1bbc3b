"""The factory flow: engines → plan → the core's stage line per batch (generate → screen → grade →
filter → measure → validate, `synthfactory.run.runner.STAGE_LINE`) → publish once.

Batches are kept in flight, a few per engine replica, so no engine idles while work remains.
Finished stages are cached per batch in the dataset's staging folder: a rerun after a crash
resumes without regenerating them.
"""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from synthfactory.run import progress
from synthfactory.errors import NothingToPublishError, UserError, ValidationGateError
from synthfactory.run.batch import BatchState, synthetic
from synthfactory.run.control import RunControl
from synthfactory.run.cost import Prices, batch_spend
from synthfactory.run.plan import engine_specs_for
from synthfactory.run.progress import RunProgress
from synthfactory.quality.guards import QualityGuards
from synthfactory.quality.versioning import dedup_across_run
from synthfactory.recipe import LoadedRecipe, load_recipe
from synthfactory.run.results import run_summary
from synthfactory.run.runner import STAGE_LINE, BatchRunner
from synthfactory.store import DatasetStore
from synthfactory.quality.validation import SuiteGate
from tasks.stages import (
    STAGE_TASKS,
    load_seeds_task,
    plan_run_task,
    publish_task,
    report_task,
    start_engines_task,
)


def artifact_key(dataset: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-") or "dataset"


def _run_name() -> str:
    """`{recipe name}-v{version it will publish}`, as the UI lists runs; the file stem if unreadable."""
    parameters = runtime.flow_run.parameters
    path = Path(str(parameters.get("recipe_path", "recipe")))
    try:
        name = yaml.safe_load(path.read_text(encoding="utf-8"))["name"]
        return f"{name}-v{DatasetStore.for_recipe(parameters.get('store', 'store'), name).next_version()}"
    except (OSError, yaml.YAMLError, KeyError, TypeError, UserError):
        return path.stem


def _tag_run(*tags: str, name: str | None = None) -> None:
    with get_client(sync_client=True) as client:
        client.update_flow_run(runtime.flow_run.id, tags=sorted({*runtime.flow_run.tags, *tags}), name=name)


def lock_name(dataset: DatasetStore) -> str:
    """The global concurrency limit that serialises runs of one dataset (names allow no '/')."""
    digest = hashlib.sha256(dataset.uri.encode()).hexdigest()[:12]
    return f"synthfactory-{artifact_key(Path(dataset.uri).name)}-{digest}"


@contextmanager
def dataset_lock(dataset: DatasetStore, lease_seconds: float = 60):
    """Hold the dataset from planning to publish, so runs of it never interleave.

    Runs of the same dataset (scheduled, manual, CLI) queue here; each plans the next version
    against everything published before it, and exactly one version comes of each run. A local
    store is locked with `flock` next to its table (released by the kernel even if the run is
    SIGKILLed). A remote store (s3://, gs://, ...) uses a one-slot Prefect global concurrency
    limit, listed under Concurrency in the UI; its slot is leased, and the server's repossessor
    service frees it `lease_seconds` after a run dies (a `prefect server start` server runs it).
    """
    run_id = runtime.flow_run.id
    if dataset.is_local:
        with dataset.exclusive(holder=f"flow run {runtime.flow_run.name} ({run_id})",
                               on_wait=get_run_logger().info):
            yield
        return
    name = lock_name(dataset)
    get_run_logger().info("taking the slot of global concurrency limit %s (one run of %s at a time)",
                          name, dataset.uri)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass  # another run created it first
    holder = ConcurrencyLeaseHolder(type="flow_run", id=run_id) if run_id else None
    with concurrency(name, occupy=1, strict=True, lease_duration=lease_seconds, holder=holder):
        yield


@flow(name="synthfactory", flow_run_name=_run_name, log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=16))
def factory_flow(recipe_path: str, store: str = "store", batches: int | None = None,
                 batch_size: int | None = None, target_rows: int | None = None) -> dict[str, Any]:
    """Run one recipe end to end and publish one new version of its dataset (`target_rows`:
    until that many rows passed, then exactly that many)."""
    started = time.perf_counter()
    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size, target_rows=target_rows)
    dataset = DatasetStore.for_recipe(store, loaded.recipe.name)
    with dataset_lock(dataset):
        return _produce(loaded, dataset, started)


def _produce(loaded: LoadedRecipe, dataset: DatasetStore, started: float) -> dict[str, Any]:
    """Start engines, plan, run every batch, publish: the body of the flow, under the dataset's lock."""
    logger = get_run_logger()
    recipe = loaded.recipe
    progress.report(RunProgress("engines"))
    # models load and pass their start check while seeds are read and the run is planned: an
    # engine that cannot run stops the run before any batch is sent to it
    engines = start_engines_task.submit(engine_specs_for(loaded))
    guards = QualityGuards.for_run(loaded, dataset.index_path, dataset.embeddings_path)
    seeds = load_seeds_task(loaded, guards, dataset.uri)
    plan = plan_run_task(loaded, seeds, dataset.next_version(), guards)
    logger.info("run %s: %d batches of up to %d for %s version %d", plan.run_id, len(plan.batches),
                recipe.batches.size, dataset.uri, plan.version)
    name = f"{recipe.name}-v{plan.version}"  # differs from the name given at start if a run published meanwhile
    _tag_run("synthfactory", f"recipe:{recipe.name}", f"engine:{recipe.generation.engine}",
             name=name if name != runtime.flow_run.name else None)
    key = artifact_key(recipe.name)
    bar = create_progress_artifact(0.0, key=f"{key}-progress", description=(
        f"accepted of {recipe.batches.target_rows} target rows of {plan.run_id}" if recipe.batches.target_rows
        else f"batches of {plan.run_id}"))

    gate = SuiteGate(loaded.suite_path, docs_dir=dataset.data_docs_path if dataset.is_local else None)
    stages = [STAGE_TASKS[name].with_options(result_storage=dataset.staging_path) for name in STAGE_LINE]
    pool = engines.result()
    engines_ready = time.perf_counter()
    runner = BatchRunner(plan, recipe, guards, gate, pool.chat)
    window = 2 * len(pool.replicas) + 2
    control = RunControl(sizes=[len(b.items) for b in plan.batches], target=recipe.batches.target_rows,
                         limits=recipe.budget.limits(), prices=Prices.from_card(recipe.card),
                         replicas=len(pool.replicas), capped=plan.capped, clock=time.perf_counter,
                         started_at=started)
    states: list[BatchState] = []
    resumed = 0
    first_batch_s: float | None = None
    accepted = 0
    target = recipe.batches.target_rows
    progress.report(RunProgress("batches", 0, len(plan.batches), 0, target))
    try:
        chains: dict[Any, list[Any]] = {}  # a batch's last future -> every stage future of that batch
        while True:
            while len(chains) < window and (index := control.next_batch()) is not None:
                chain: list[Any] = []
                holder: Any = plan.batches[index]  # the batch plan, then each stage's future state
                for stage in stages:
                    holder = stage.submit(runner, holder)
                    chain.append(holder)
                chains[holder] = chain
            if not chains:
                break
            done = next(as_completed(list(chains)))
            state = _batch_result(chains.pop(done))
            states.append(state)
            resumed += done.state.name == "Cached"  # the whole batch finished in an earlier run
            mine = synthetic(state.rows)
            real = len(state.rows) - mine
            accepted += mine
            if target is not None and accepted >= target:  # what publish will count: after dedup across batches
                accepted = sum(synthetic(s.rows) for s in dedup_across_run(states, guards))
            control.finished(state.batch_index, accepted, batch_spend(state))
            update_progress_artifact(bar, 100.0 * control.fraction(len(states)))
            if first_batch_s is None and state.status == "passed" and mine:
                first_batch_s = time.perf_counter() - started
            progress.report(RunProgress("batches", len(states), len(plan.batches), accepted, target))
            logger.info(
                "batch %d/%d %s %s: %d accepted (+%d real), %d rejected, %d quarantined (run total: %d accepted%s)",
                len(states), len(plan.batches), state.batch_id, state.status, mine, real,
                len(state.rejected), len(state.quarantined), accepted, f" of {target}" if target else "",
            )
        engine_stats = pool.stats()
    finally:
        pool.shutdown()
    outcome = control.outcome()
    logger.info("stopped starting batches: %s%s after %d of %d planned batches", outcome["stopped"],
                f" ({control.stopped_by})" if control.stopped_by else "", len(states), len(plan.batches))

    failed = [s.batch_id for s in states if s.status == "quarantined"]
    if failed and recipe.validation.on_failure == "fail":
        raise ValidationGateError(f"validation.on_failure is 'fail' and batches {failed} failed their suite")
    extra = {
        "dataset_uri": dataset.uri, "prefect_flow_run_id": str(runtime.flow_run.id), "batches_resumed": resumed,
        "engine_requests": engine_stats["requests"], "engine_busy_seconds": round(engine_stats["busy_seconds"], 3),
        "engine_busy_share": engine_stats["busy_share"],
        "engine_nodes": engine_stats["nodes"], "engine_replicas": engine_stats["replicas"],
        "engine_batches_retried": engine_stats["retried_batches"],
        "engines_ready_seconds": round(engines_ready - started, 3),
        "first_batch_seconds": round(first_batch_s, 3) if first_batch_s is not None else None,
        "suite": gate.suite.name, **outcome,
        "recipe": recipe.model_dump(mode="json"),  # for the dataset card; holds no secrets (key env NAMES only)
    }
    progress.report(RunProgress("publishing", len(states), len(plan.batches), accepted, target))
    metadata = publish_task(plan, states, dataset.uri, guards, extra, recipe.publish.min_rows)
    report_task(metadata, key)
    if not metadata["published"]:
        raise NothingToPublishError(metadata["not_published_because"])
    update_progress_artifact(bar, 100.0)
    progress.report(RunProgress("done", len(states), len(plan.batches), metadata["accepted"], target))
    return run_summary(metadata, time.perf_counter() - started)


def _batch_result(chain: list[Any]) -> BatchState:
    """The batch's final state; if a stage failed, its own exception (the engine's cause), not the
    `UnfinishedRun` that Prefect reports for the stages waiting behind it."""
    try:
        return chain[-1].result()
    except Exception:
        for future in chain:
            if future.state.is_failed() or future.state.is_crashed():
                future.result()  # raises the stage's own exception
        raise
