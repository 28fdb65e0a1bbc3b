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
from prefect.filesystems import WritableFileSystem
from prefect.futures import PrefectFuture, as_completed
from prefect.utilities.asyncutils import run_sync_in_worker_thread
from pydantic import Field

from synthfactory.recipe import LoadedRecipe
from synthfactory.model.batch import BatchState
from synthfactory.model.metadata import VersionMetadata
from synthfactory.model.plan import BatchPlan, RunPlan
from synthfactory.run.runner import STAGE_LINE
from synthfactory.storage import Location, storage_options
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
    if dataset.root.local_path is not None:
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


class StagingStorage(WritableFileSystem):
    """Prefect result storage for a dataset on an object store: its staging folder, reached through
    `synthfactory.storage` with the credentials each process reads from its own environment.

    Prefect keeps result storage as a saved block (a rerun, on any worker, reads the results
    through it). This block holds the folder's URI and the NAMES of the environment variables a
    recipe's `storage_options` section gives, never a value: nothing secret reaches the server."""

    _block_type_name = "Synthfactory Staging"
    _block_type_slug = "synthfactory-staging"
    _description = "A synthfactory dataset's staging folder on an object store (credentials from the environment)."

    basepath: str = Field(description="the staging folder's URI, e.g. s3://bucket/datasets/name/_staging")
    variables: dict[str, str] = Field(default_factory=dict, description=(
        "a recipe's storage_options: standard option name -> the NAME of the variable holding it"))

    def _at(self, path: str) -> Location:
        folder = Location.of(self.basepath, storage_options(self.basepath, self.variables or None))
        return folder.child(path.removeprefix(self.basepath.rstrip("/") + "/"))

    # Prefect calls these with `_sync=True` (its blocks dispatch sync/async on it); ours are always sync
    def read_path(self, path: str, _sync: bool | None = None) -> bytes:
        return self._at(path).read_bytes()

    def write_path(self, path: str, content: bytes, _sync: bool | None = None) -> str:
        return self._at(path).write_bytes(content).uri

    async def aread_path(self, path: str) -> bytes:
        return await run_sync_in_worker_thread(self.read_path, path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return await run_sync_in_worker_thread(self.write_path, path, content)


def result_storage(dataset: DatasetStore, variables: dict[str, str] | None = None) -> Any:
    """Where the stage tasks persist their results: the dataset's staging folder, so a rerun on any
    worker that reaches the store loads them. A local folder is a path; an object store's is a
    `StagingStorage` block, saved under a name derived from the folder (a rerun saves the same)."""
    local = dataset.staging_path.local_path
    if local is not None:
        return local
    block = StagingStorage(basepath=dataset.staging_path.uri, variables=dict(variables or {}))
    name = "staging-" + hashlib.sha256(block.basepath.encode()).hexdigest()[:16]
    for attempt in range(3):  # two runs starting together may both register the type or save the block
        try:
            block.save(name, overwrite=True)
            return block
        except ObjectAlreadyExists:
            if attempt == 2:
                raise
    return block


def tag_run(*tags: str, name: str | None = None) -> None:
    """Add tags to the current flow run, and rename it (`name`) if given."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(runtime.flow_run.id, tags=sorted({*runtime.flow_run.tags, *tags}), name=name)


class PrefectExecutor:
    """Inside a flow run: each step a task of `tasks/stages.py`, batch stages with their result
    storage in the dataset's staging folder (a rerun loads them: state `Cached`)."""

    def __init__(self, dataset: DatasetStore, variables: dict[str, str] | None = None) -> None:
        self.log = get_run_logger()
        self.run_ids: dict[str, Any] = {"prefect_flow_run_id": str(runtime.flow_run.id)}
        storage = result_storage(dataset, variables)
        self._stages = {name: STAGE_TASKS[name].with_options(result_storage=storage) for name in STAGE_LINE}
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
