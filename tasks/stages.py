"""Per-stage Prefect tasks. Each calls the core (`synthfactory.run.runner`); none holds logic of its own.

Batch stages are cached under `{batch_id}-{stage}` in the dataset's staging folder, so a rerun of
an interrupted run loads finished stages instead of calling an engine again.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from synthfactory.model.batch import BatchState
from synthfactory.engines.base import EngineSpec
from synthfactory.run.plan import BatchPlan, RunPlan, plan_run
from synthfactory.engines.pool import EnginePool
from synthfactory.quality.guards import QualityGuards
from synthfactory.recipe import LoadedRecipe
from synthfactory.model.metadata import VersionMetadata
from synthfactory.publish.report import rejection_table, run_report_markdown
from synthfactory.run.executor import (ENGINE_RETRIES, ENGINE_RETRY_DELAY_S, ENGINE_STAGES, PUBLISH_RETRIES,
                                       PUBLISH_RETRY_DELAY_S, worth_retrying)
from synthfactory.run.runner import STAGE_LINE, BatchRunner, publish_run, run_seeds
from synthfactory.inputs.seeds import SeedSet
from synthfactory.store import DatasetStore, recipe_storage_options


def _not_ours(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a stage for transient errors only (the core's `worth_retrying`, as the local executor
    does): an engine failure, a bad recipe or a failed gate has a cause a retry would only repeat."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - anything not ours may be transient
        return worth_retrying(exc)
    return True


def _stage_key(stage: str):
    """Cache key: the deterministic batch id plus the stage name (honest: the id hashes the recipe)."""

    def key(_: TaskRunContext, parameters: dict[str, Any]) -> str:
        holder = parameters.get("batch") or parameters["state"]
        return f"{holder.batch_id}-{stage}"

    return key


@task(name="load-seeds", cache_policy=NO_CACHE, persist_result=False)
def load_seeds_task(loaded: LoadedRecipe, guards: QualityGuards, dataset_uri: str) -> SeedSet:
    seeds = run_seeds(loaded, guards, dataset_uri)
    get_run_logger().info("seeds: %d usable (%d recycled from published synthetic rows), %d quarantined",
                          len(seeds.rows), sum(s.recycled for s in seeds.rows), len(seeds.quarantined))
    return seeds


@task(name="plan-run", cache_policy=NO_CACHE, persist_result=False)
def plan_run_task(loaded: LoadedRecipe, seeds: SeedSet, version: int, guards: QualityGuards) -> RunPlan:
    plan = plan_run(loaded, seeds, version, contaminated=guards.contaminated_by)
    get_run_logger().info("planned %d batches; %d seed rows quarantined", len(plan.batches),
                          len(plan.seeds_quarantined))
    return plan


@task(name="start-engines", cache_policy=NO_CACHE, persist_result=False)
def start_engines_task(specs: list[EngineSpec]) -> EnginePool:
    """Start every replica and run its start check; the first that fails ends the run here."""
    pool = EnginePool(specs)
    for replica in pool.replicas:
        get_run_logger().info("engine %s ready on node %s (loaded in %.1fs)",
                              replica["model"], replica["node_id"][:12], replica["load_seconds"])
    return pool


_ENGINE = {"retries": ENGINE_RETRIES, "retry_delay_seconds": ENGINE_RETRY_DELAY_S, "retry_condition_fn": _not_ours}
assert set(ENGINE_STAGES) == {"generate", "grade"}  # the tasks below that take `**_ENGINE`


@task(name="generate", task_run_name="generate-{batch.batch_index}", cache_key_fn=_stage_key("generate"),
      persist_result=True, **_ENGINE)
def generate_batch_task(runner: BatchRunner, batch: BatchPlan) -> BatchState:
    return runner.generate(batch)


@task(name="screen", task_run_name="screen-{state.batch_index}", cache_key_fn=_stage_key("screen"),
      persist_result=True)
def screen_batch_task(runner: BatchRunner, state: BatchState) -> BatchState:
    return runner.screen(state)


@task(name="verify", task_run_name="verify-{state.batch_index}", cache_key_fn=_stage_key("verify"),
      persist_result=True)
def verify_batch_task(runner: BatchRunner, state: BatchState) -> BatchState:
    return runner.verify(state)


@task(name="grade", task_run_name="grade-{state.batch_index}", cache_key_fn=_stage_key("grade"),
      persist_result=True, **_ENGINE)
def grade_batch_task(runner: BatchRunner, state: BatchState) -> BatchState:
    return runner.grade(state)


@task(name="filter", task_run_name="filter-{state.batch_index}", cache_key_fn=_stage_key("filter"),
      persist_result=True)
def filter_batch_task(runner: BatchRunner, state: BatchState) -> BatchState:
    return runner.filter(state)


@task(name="measure", task_run_name="measure-{state.batch_index}", cache_key_fn=_stage_key("measure"),
      persist_result=True)
def measure_batch_task(runner: BatchRunner, state: BatchState) -> BatchState:
    return runner.measure(state)


@task(name="validate", task_run_name="validate-{state.batch_index}", cache_key_fn=_stage_key("validate"),
      persist_result=True)
def validate_batch_task(runner: BatchRunner, state: BatchState) -> BatchState:
    return runner.validate(state)


# the core's stage line, one task per stage (the flow chains them in `STAGE_LINE` order)
STAGE_TASKS = {"generate": generate_batch_task, "screen": screen_batch_task, "verify": verify_batch_task,
               "grade": grade_batch_task,
               "filter": filter_batch_task, "measure": measure_batch_task, "validate": validate_batch_task}
assert tuple(STAGE_TASKS) == STAGE_LINE


@task(name="publish", cache_policy=NO_CACHE, persist_result=False, retries=PUBLISH_RETRIES,
      retry_delay_seconds=PUBLISH_RETRY_DELAY_S, retry_condition_fn=_not_ours)
def publish_task(plan: RunPlan, states: list[BatchState], store_uri: str, guards: QualityGuards,
                 extra: dict[str, Any], min_rows: int = 1) -> VersionMetadata:
    """The core's publish sequence (`runner.publish_run`), logged to the run."""
    logger = get_run_logger()
    dataset = DatasetStore(store_uri, recipe_storage_options(store_uri, guards.loaded.recipe))
    return publish_run(plan, states, dataset, guards, extra, min_rows,
                       info=logger.info, warn=logger.warning)


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report_task(metadata: VersionMetadata, key: str) -> None:
    """The run report and the rejection table as Prefect artifacts (shown on the flow run page)."""
    create_markdown_artifact(run_report_markdown(metadata), key=f"{key}-report",
                             description=f"{metadata.dataset} version {metadata.version}")
    create_table_artifact(rejection_table(metadata), key=f"{key}-rejections",
                          description="quarantined batches and rejected-row reasons")
