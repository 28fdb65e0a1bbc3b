"""The Prefect executor: whatever function the run driver submits becomes a Prefect task on the fly
(`tasks/units.py`), so a run gets fan-out, retries, the dataset lock and the UI; the watcher
names and tags the run and keeps its progress and report artifacts. What the run does is the
core's (`synthfactory.run.driver`); what a finished unit keeps is the core's staging format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger, runtime
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.futures import PrefectFuture

from synthfactory.model.context import RunContext
from synthfactory.model.metadata import VersionMetadata
from synthfactory.run.executor import first_done
from synthfactory.store import DatasetStore
from tasks.units import as_task, report_task

T = TypeVar("T")


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


def tag_run(*tags: str, name: str | None = None) -> None:
    """Add tags to the current flow run, and rename it (`name`) if given."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(runtime.flow_run.id, tags=sorted({*runtime.flow_run.tags, *tags}), name=name)


class PrefectExecutor:
    """Inside a flow run: each submitted function a Prefect task made on the fly (`tasks.units`),
    run by the flow's task runner; keyed units kept in the dataset's staging folder in the core's
    format. Its futures are the standard library's (the driver treats both executors alike); the
    Prefect futures behind them carry the dependencies Prefect shows and waits for."""

    def __init__(self, dataset: DatasetStore) -> None:
        self.log = get_run_logger()
        self.run_ids: dict[str, Any] = {"prefect_flow_run_id": str(runtime.flow_run.id)}
        self.staging = dataset.staging_path
        self._prefect: dict[Future[Any], PrefectFuture[Any]] = {}

    def lock(self, dataset: DatasetStore):
        return dataset_lock(dataset)

    def submit(self, fn: Callable[..., T], *args: Any, name: str, key: str | None = None,
               retries: int = 0) -> Future[T]:
        unit, leading = as_task(fn, name, key=key, retries=retries, staging=self.staging)
        submitted = unit.submit(*leading, *(self._prefect.get(a, a) if isinstance(a, Future) else a for a in args))
        out: Future[T] = Future()
        out.set_running_or_notify_cancel()

        def settle(done: PrefectFuture[Any]) -> None:
            try:
                out.set_result(done.result())
            except BaseException as exc:  # the unit's own exception, or Prefect's for a unit that never ran
                out.set_exception(exc)

        self._prefect[out] = submitted
        submitted.add_done_callback(settle)
        return out

    def wait_any(self, futures: Sequence[Future[Any]]) -> Future[Any]:
        return first_done(futures)


class PrefectWatcher:
    """What the UI shows of a run: its name and tags once planned, a progress artifact, and the
    run report and rejection table as artifacts once published."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._key = "dataset"

    def planned(self, context: RunContext) -> None:
        """Name the run after the version it publishes, tag it, and start its progress artifact."""
        recipe, plan = context.recipe, context.plan
        name = f"{recipe.name}-v{plan.version}"  # differs from the name given at start if a run published meanwhile
        tag_run("synthfactory", f"recipe:{recipe.name}", f"engine:{recipe.generation.engine}",
                name=name if name != runtime.flow_run.name else None)
        self._key = artifact_key(recipe.name)
        self._bar = create_progress_artifact(0.0, key=f"{self._key}-progress", description=(
            f"accepted of {recipe.batches.target_rows} target rows of {plan.run_id}" if recipe.batches.target_rows
            else f"batches of {plan.run_id}"))

    def progressed(self, fraction: float) -> None:
        if self._bar is not None:
            update_progress_artifact(self._bar, 100.0 * fraction)

    def finished(self, metadata: VersionMetadata) -> None:
        report_task(metadata, self._key)
