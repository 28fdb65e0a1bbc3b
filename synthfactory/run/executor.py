"""Where a run's steps execute: the executor protocol the run driver (`synthfactory.run.driver`)
hands its work to, and the core's local executor (threads, no Prefect).

The driver decides what runs (plan, admission, the stage line, recount, publish); an executor
decides where and how: threads in this process here, Prefect tasks with retries, result caching
and artifacts in `flows/executor.py`. Both keep each finished batch stage under
`{batch_id}-{stage}` in the dataset's staging folder, so a killed run resumes from it either way.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, TypeVar

from synthfactory.errors import SynthfactoryError
from synthfactory.model.batch import BatchState
from synthfactory.run.plan import BatchPlan, RunPlan, plan_run
from synthfactory.storage import Location, StorageError
from synthfactory.store import DatasetStore

if TYPE_CHECKING:
    from synthfactory.model.metadata import VersionMetadata

log = logging.getLogger("synthfactory.run")
T = TypeVar("T")

# what either executor retries, and when (Prefect: the tasks' `retries` and `retry_condition_fn`)
ENGINE_STAGES = ("generate", "grade")  # the stages that call engines
ENGINE_RETRIES, ENGINE_RETRY_DELAY_S = 2, 2.0
PUBLISH_RETRIES, PUBLISH_RETRY_DELAY_S = 2, 1.0


def worth_retrying(error: BaseException) -> bool:
    """Whether a retry may cure a failed step: not one of ours (an engine failure, endpoints down,
    a bad recipe, a failed gate), whose cause a retry would only repeat, minutes later."""
    return isinstance(error, Exception) and not isinstance(error, SynthfactoryError)


def retrying(step: Callable[[], T], retries: int, delay_s: float, what: str) -> T:
    """`step()`, again up to `retries` times after a failure `worth_retrying`, `delay_s` apart."""
    for attempt in range(retries + 1):
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - retried or raised as it is
            if attempt == retries or not worth_retrying(exc):
                raise
            log.warning("%s failed (%s: %s); retrying in %gs (attempt %d of %d)", what, type(exc).__name__, exc,
                        delay_s, attempt + 2, retries + 1)
            time.sleep(delay_s)
    raise AssertionError("unreachable")


class StageFuture(Protocol):
    """A batch stage started by an executor; `result()` raises the stage's own exception."""

    def result(self) -> Any: ...


class Executor(Protocol):
    """What the run driver needs from wherever a run executes."""

    log: logging.Logger | logging.LoggerAdapter  # the run's log (Prefect: the flow run's logger)
    run_ids: dict[str, Any]  # recorded in the commit metadata (`prefect_flow_run_id`)

    def lock(self, dataset: DatasetStore) -> AbstractContextManager[None]:
        """Hold `dataset` from planning to publish, so runs of one dataset never interleave."""

    def start_engines(self, specs: list[Any]) -> StageFuture:
        """Start the engine pool in the background (models load while seeds are read and planned)."""

    def load_seeds(self, loaded: Any, guards: Any, dataset_uri: str) -> Any: ...

    def plan(self, loaded: Any, seeds: Any, version: int, guards: Any) -> RunPlan: ...

    def planned(self, plan: RunPlan, loaded: Any) -> None:
        """The run knows its version and batches (Prefect: names and tags the run, a progress artifact)."""

    def submit_stage(self, stage: str, runner: Any, holder: BatchPlan | StageFuture) -> StageFuture:
        """Start `stage` of one batch once `holder` (the batch plan, or the previous stage) is ready."""

    def wait_any(self, futures: list[StageFuture]) -> StageFuture:
        """One of `futures` that has finished (the oldest of those finished)."""

    def batch_result(self, chain: list[StageFuture]) -> BatchState:
        """The last stage's state, or the first failed stage's own exception."""

    def resumed(self, last: StageFuture) -> bool:
        """Whether the batch's last stage was loaded from an earlier run instead of run."""

    def progressed(self, fraction: float) -> None: ...

    def publish(self, plan: RunPlan, states: list[BatchState], dataset: DatasetStore, guards: Any,
                extra: dict[str, Any], min_rows: int) -> VersionMetadata: ...

    def report(self, metadata: VersionMetadata) -> None:
        """The run report for whoever watches (Prefect: markdown and table artifacts)."""


# -- the stage results each executor leaves in the staging folder ---------------------------------

def stage_key(batch_id: str, stage: str) -> str:
    """The name of a finished stage's result in the staging folder (Prefect's cache key too)."""
    return f"{batch_id}-{stage}"


def read_staged(folder: Location | Path, key: str) -> BatchState | None:
    """A stage result an earlier run staged, written by either executor, or None.

    The file is Prefect's result record (JSON: `metadata` and the cloudpickled, base64 `result`);
    one that cannot be read is treated as absent, so the stage runs again. A store that cannot be
    reached is not absent: its StorageError stops the run."""
    path = Location.of(folder).child(key)
    try:
        record = json.loads(path.read_bytes())
        serializer = record["metadata"]["serializer"]
        if serializer.get("type") != "pickle":
            return None
        import cloudpickle

        value = cloudpickle.loads(base64.decodebytes(record["result"].encode()))
    except FileNotFoundError:
        return None
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: run the stage again
        log.warning("staged result %s unreadable (%s); running the stage again", path, exc)
        return None
    return value if isinstance(value, BatchState) else None


def write_staged(folder: Location | Path, key: str, state: BatchState) -> None:
    """Stage a finished stage's result in the layout Prefect's result storage writes, whole or not
    at all (a run killed mid-write leaves no torn file), so a rerun by either executor, on any
    machine that reaches the store, loads it."""
    import cloudpickle

    path = Location.of(folder).child(key)
    record = {
        "metadata": {"storage_key": str(path), "expiration": None,
                     "serializer": {"type": "pickle", "picklelib": "cloudpickle", "picklelib_version": None},
                     "prefect_version": "synthfactory-local", "storage_block_id": None},
        "result": base64.encodebytes(cloudpickle.dumps(state)).decode(),
    }
    path.write_bytes(json.dumps(record).encode())


# -- the local executor ---------------------------------------------------------------------------

class _Stage(Future):
    """A local stage future that knows whether it was loaded from the staging folder."""

    loaded = False


class LocalExecutor:
    """Threads in this process: the run's steps are plain core calls, each batch stage a thread-pool
    job started when the stage before it finished, its result staged under `{batch_id}-{stage}`.
    `staging` None (tests) keeps nothing."""

    def __init__(self, staging: Location | Path | None = None, workers: int = 16,
                 logger: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.staging = Location.of(staging) if staging is not None else None
        self.log = logger or log
        self.run_ids: dict[str, Any] = {"prefect_flow_run_id": None}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthfactory-stage")

    @contextmanager
    def lock(self, dataset: DatasetStore) -> Iterator[None]:
        """A local dataset: its `flock` (as the Prefect executor takes it). A remote one cannot be
        locked without a Prefect server: the run says so and goes on unlocked."""
        if dataset.root.local_path is None:
            self.log.warning("%s is not a local store: without Prefect's global concurrency limit, runs of it "
                             "are not serialised; do not start two at once", dataset.uri)
            yield
            return
        with dataset.exclusive(holder=f"local run (pid {os.getpid()})", on_wait=self.log.info):
            yield

    def start_engines(self, specs: list[Any]) -> Future:
        from synthfactory.engines.pool import EnginePool

        def start() -> Any:
            pool = EnginePool(specs)
            for replica in pool.replicas:
                self.log.info("engine %s ready on node %s (loaded in %.1fs)", replica["model"],
                              replica["node_id"][:12], replica["load_seconds"])
            return pool

        return self._pool.submit(start)

    def load_seeds(self, loaded: Any, guards: Any, dataset_uri: str) -> Any:
        from synthfactory.run.runner import run_seeds

        seeds = run_seeds(loaded, guards, dataset_uri)
        self.log.info("seeds: %d usable (%d recycled from published synthetic rows), %d quarantined",
                      len(seeds.rows), sum(s.recycled for s in seeds.rows), len(seeds.quarantined))
        return seeds

    def plan(self, loaded: Any, seeds: Any, version: int, guards: Any) -> RunPlan:
        plan = plan_run(loaded, seeds, version, contaminated=guards.contaminated_by)
        self.log.info("planned %d batches; %d seed rows quarantined", len(plan.batches), len(plan.seeds_quarantined))
        return plan

    def planned(self, plan: RunPlan, loaded: Any) -> None:
        pass

    def submit_stage(self, stage: str, runner: Any, holder: BatchPlan | Future) -> Future:
        out = _Stage()
        out.set_running_or_notify_cancel()

        def start(value: Any) -> None:
            try:
                self._pool.submit(self._run_stage, stage, runner, value, out)
            except RuntimeError:  # the executor was closed: the run is over, this stage never starts
                out.set_exception(CancelledError(f"{stage} of batch {value.batch_index}: the run stopped"))

        if isinstance(holder, Future):
            holder.add_done_callback(lambda done: out.set_exception(done.exception()) if done.exception()
                                     else start(done.result()))
        else:
            start(holder)
        return out

    def _run_stage(self, stage: str, runner: Any, value: Any, out: _Stage) -> None:
        try:
            key = stage_key(value.batch_id, stage)
            state = read_staged(self.staging, key) if self.staging is not None else None
            out.loaded = state is not None
            if state is None:
                retries = ENGINE_RETRIES if stage in ENGINE_STAGES else 0
                state = retrying(lambda: getattr(runner, stage)(value), retries, ENGINE_RETRY_DELAY_S,
                                 f"{stage} of batch {value.batch_index}")
                if self.staging is not None:
                    write_staged(self.staging, key, state)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the batch
            out.set_exception(exc)
            return
        out.set_result(state)

    def wait_any(self, futures: list[Future]) -> Future:
        wait(futures, return_when=FIRST_COMPLETED)
        return next(f for f in futures if f.done())

    def batch_result(self, chain: list[Future]) -> BatchState:
        return chain[-1].result()  # a failed stage's exception travels down its chain unchanged

    def resumed(self, last: Future) -> bool:
        return bool(getattr(last, "loaded", False))

    def progressed(self, fraction: float) -> None:
        pass

    def publish(self, plan: RunPlan, states: list[BatchState], dataset: DatasetStore, guards: Any,
                extra: dict[str, Any], min_rows: int) -> VersionMetadata:
        from synthfactory.run.runner import publish_run

        return retrying(lambda: publish_run(plan, states, dataset, guards, extra, min_rows, info=self.log.info,
                                            warn=self.log.warning), PUBLISH_RETRIES, PUBLISH_RETRY_DELAY_S, "publish")

    def report(self, metadata: VersionMetadata) -> None:
        pass

    def close(self, wait: bool = False) -> None:
        """Start no more stages; those running finish in their threads (a failed run does not wait
        for them unless `wait`)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

