"""The Prefect executor: the run driver's steps as Prefect tasks (`tasks/stages.py`), so a run gets
fan-out, retries, result caching under `{batch_id}-{stage}`, the dataset lock, and the UI's
progress and report artifacts. What the run does is the core's (`synthfactory.run.driver`).
"""

from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from prefect import get_run_logger, runtime
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.futures import PrefectFuture, as_completed

from synthfactory.recipe import LoadedRecipe
from synthfactory.run.batch import BatchState
from synthfactory.run.metadata import VersionMetadata
from synthfactory.run.plan import BatchPlan, RunPlan
from synthfactory.run.runner import STAGE_LINE
from synthfactory.store import DatasetStore
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


def lock_name(dataset: DatasetStore) -> str:
    """The global concurrency limit that serialises runs of one dataset (names allow no '/')."""
    digest = hashlib.sha256(dataset.uri.encode()).hexdigest()[:12]
    return f"synthfactory-{artifact_key(Path(dataset.uri).name)}-{digest}"


@contextmanager
def dataset_lock(dataset: DatasetStore, lease_seconds: float = 60) -> Iterator[None]:
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


def tag_run(*tags: str, name: str | None = None) -> None:
    """Add tags to the current flow run, and rename it (`name`) if given."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(runtime.flow_run.id, tags=sorted({*runtime.flow_run.tags, *tags}), name=name)


class PrefectExecutor:
    """Inside a flow run: each step a task of `tasks/stages.py`, batch stages with their result
    storage in the dataset's staging folder (a rerun loads them: state `Cached`)."""

    def __init__(self, dataset: DatasetStore) -> None:
        self.log = get_run_logger()
        self.run_ids: dict[str, Any] = {"prefect_flow_run_id": str(runtime.flow_run.id)}
        self._stages = {name: STAGE_TASKS[name].with_options(result_storage=dataset.staging_path)
                        for name in STAGE_LINE}
        self._bar: Any = None
        self._key = "dataset"

    def lock(self, dataset: DatasetStore):
        return dataset_lock(dataset)

    def start_engines(self, specs: list[Any]) -> PrefectFuture:
        return start_engines_task.submit(specs)

    def load_seeds(self, loaded: LoadedRecipe, guards: Any, dataset_uri: str) -> Any:
        return load_seeds_task(loaded, guards, dataset_uri)

    def plan(self, loaded: LoadedRecipe, seeds: Any, version: int, guards: Any) -> RunPlan:
        return plan_run_task(loaded, seeds, version, guards)

    def planned(self, plan: RunPlan, loaded: LoadedRecipe) -> None:
        """Name the run after the version it publishes, tag it, and start its progress artifact."""
        recipe = loaded.recipe
        name = f"{recipe.name}-v{plan.version}"  # differs from the name given at start if a run published meanwhile
        tag_run("synthfactory", f"recipe:{recipe.name}", f"engine:{recipe.generation.engine}",
                name=name if name != runtime.flow_run.name else None)
        self._key = artifact_key(recipe.name)
        self._bar = create_progress_artifact(0.0, key=f"{self._key}-progress", description=(
            f"accepted of {recipe.batches.target_rows} target rows of {plan.run_id}" if recipe.batches.target_rows
            else f"batches of {plan.run_id}"))

    def submit_stage(self, stage: str, runner: Any, holder: BatchPlan | PrefectFuture) -> PrefectFuture:
        return self._stages[stage].submit(runner, holder)

    def wait_any(self, futures: list[PrefectFuture]) -> PrefectFuture:
        return next(as_completed(futures))

    def batch_result(self, chain: list[PrefectFuture]) -> BatchState:
        """The batch's final state; if a stage failed, its own exception (the engine's cause), not the
        `UnfinishedRun` that Prefect reports for the stages waiting behind it."""
        try:
            return chain[-1].result()
        except Exception:
            for future in chain:
                if future.state.is_failed() or future.state.is_crashed():
                    future.result()  # raises the stage's own exception
            raise

    def resumed(self, last: PrefectFuture) -> bool:
        return last.state.name == "Cached"  # the whole batch finished in an earlier run

    def progressed(self, fraction: float) -> None:
        if self._bar is not None:
            update_progress_artifact(self._bar, 100.0 * fraction)

    def publish(self, plan: RunPlan, states: list[BatchState], dataset: DatasetStore, guards: Any,
                extra: dict[str, Any], min_rows: int) -> VersionMetadata:
        return publish_task(plan, states, dataset.uri, guards, extra, min_rows)

    def report(self, metadata: VersionMetadata) -> None:
        report_task(metadata, self._key)

    def close(self) -> None:
        pass
