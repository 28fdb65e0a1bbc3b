"""Where a run's work executes: the executor protocol and the core's local executor (threads, no
Prefect).

An executor knows nothing of what the work is (seeds, stages, publishing are the driver's,
`synthfactory.run.driver`): it runs functions. Its whole interface is `submit` a function with a
name, a key and retries; `wait_any` of the futures it returned; and a `lock` for a dataset. A
keyed unit is kept in the run's staging folder under its key in the core's format
(`synthfactory.run.staging`), and a later run loads it instead of running it, on either
executor. The local executor is here; Prefect's, which makes each submitted function a task on
the fly (its name, retries, the UI), is `flows/executor.py`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from synthfactory.errors import SynthfactoryError
from synthfactory.run.staging import load_or_run
from synthfactory.storage import Location
from synthfactory.store import DatasetStore

log = logging.getLogger("synthfactory.run")
T = TypeVar("T")

ENGINE_RETRIES = 2  # units that call engines (`Stage.calls_engines`) and publish: tries after the first
RETRY_DELAY_S = 2.0


def worth_retrying(error: BaseException) -> bool:
    """Whether a retry may cure a failed unit: not one of ours (an engine failure, endpoints down,
    a bad recipe, a failed gate), whose cause a retry would only repeat, minutes later."""
    return isinstance(error, Exception) and not isinstance(error, SynthfactoryError)


def retrying(step: Callable[[], T], retries: int, delay_s: float, what: str) -> T:
    """`step()`, again up to `retries` times after a failure `worth_retrying`, `delay_s` apart."""
    for attempt in range(retries + 1):
        try:
            return step()
        except Exception as exc:
            if attempt == retries or not worth_retrying(exc):
                raise
            log.warning("%s failed (%s: %s); retrying in %gs (attempt %d of %d)", what, type(exc).__name__, exc,
                        delay_s, attempt + 2, retries + 1)
            time.sleep(delay_s)
    raise AssertionError("unreachable")


class Executor(Protocol):
    """Where a run's functions execute. Nothing here knows what they do."""

    log: logging.Logger | logging.LoggerAdapter  # the run's log (Prefect: the flow run's logger)
    run_ids: dict[str, Any]  # recorded in the commit metadata (`prefect_flow_run_id`)

    def submit(self, fn: Callable[..., T], *args: Any, name: str, key: str | None = None,
               retries: int = 0) -> Future[T]:
        """Run `fn(*args)`. An argument that is a future this executor returned is waited for and
        replaced by its result (if it failed, so does this, with its exception). `key`: the
        unit's result is kept in the staging folder under it, and a unit with a key already kept
        returns that instead of running. `retries`: tried again after an error `worth_retrying`."""

    def wait_any(self, futures: Sequence[Future[Any]]) -> Future[Any]:
        """One of `futures` that has finished (the first of them in their order)."""

    def lock(self, dataset: DatasetStore) -> AbstractContextManager[None]:
        """Hold `dataset` from planning to publish, so runs of one dataset never interleave."""


def first_done(futures: Sequence[Future[Any]]) -> Future[Any]:
    wait(futures, return_when=FIRST_COMPLETED)
    return next(f for f in futures if f.done())


class LocalExecutor:
    """Threads in this process. `staging` None (tests, previews) keeps nothing."""

    def __init__(self, staging: Location | Path | None = None, workers: int = 16,
                 logger: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.staging = Location.of(staging) if staging is not None else None
        self.log = logger or log
        self.run_ids: dict[str, Any] = {"prefect_flow_run_id": None}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthfactory")

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

    def submit(self, fn: Callable[..., T], *args: Any, name: str, key: str | None = None,
               retries: int = 0) -> Future[T]:
        out: Future[T] = Future()
        out.set_running_or_notify_cancel()
        waiting = [a for a in args if isinstance(a, Future)]

        def unit(values: tuple[Any, ...]) -> T:
            call = lambda: retrying(lambda: fn(*values), retries, RETRY_DELAY_S, name)  # noqa: E731
            return load_or_run(self.staging, key, call) if key is not None else call()

        def start() -> None:
            failed = next((a.exception() for a in waiting if a.exception() is not None), None)
            if failed is not None:
                out.set_exception(failed)
                return
            values = tuple(a.result() if isinstance(a, Future) else a for a in args)
            try:
                job = self._pool.submit(unit, values)
            except RuntimeError:  # the executor was closed: the run is over, this unit never starts
                out.set_exception(CancelledError(f"{name}: the run stopped"))
                return
            job.add_done_callback(lambda done: out.set_exception(done.exception()) if done.exception() is not None
                                  else out.set_result(done.result()))

        if not waiting:
            start()
            return out
        remaining, counting = [len(waiting)], threading.Lock()

        def ready(_: Future[Any]) -> None:
            with counting:  # the futures may finish in different threads
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                start()

        for dependency in waiting:
            dependency.add_done_callback(ready)
        return out

    def wait_any(self, futures: Sequence[Future[Any]]) -> Future[Any]:
        return first_done(futures)

    def close(self, wait: bool = False) -> None:
        """Start no more units; those running finish in their threads (a failed run does not wait
        for them unless `wait`)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
