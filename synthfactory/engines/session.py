"""Engines for one command: Ray joined or started, the pool up, and both gone on exit.

`synthfactory run`, `calibrate` and `preview` (and `run_recipe`) hold engines this way instead of
each starting and stopping Ray and a pool themselves.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def ray_session(quiet: bool = False) -> Iterator[None]:
    """Join the cluster at RAY_ADDRESS or start a local one (from this thread: Ray started in a
    worker thread takes ~15 s to shut down); on exit leave it, stopping the local processes, if
    this session connected: left to exit hooks, Ray's agents outlive the command and hold its
    output pipes open."""
    import ray

    from synthfactory.engines.pool import ensure_ray

    connected_before = ray.is_initialized()
    with _sigterm_kept():
        ensure_ray(quiet=quiet)
    try:
        yield
    finally:
        if not connected_before and ray.is_initialized():
            _kill_autoscaler_monitor()
            ray.shutdown()


def local_cluster_lost() -> bool:
    """True when this process started a local Ray cluster and some of its processes died while the
    driver is still connected (a SIGTERM sent to the whole process group reaches them too): nothing
    of the cluster is left to stop, and the driver's disconnect in `ray.shutdown()` waits on the dead
    GCS (measured 8.0 s; a call to it, up to 60 s). Ray kills its processes after that disconnect,
    so a stop that `ray_session` makes on purpose never counts."""
    import sys

    if "ray" not in sys.modules:
        return False
    try:
        worker = sys.modules["ray"]._private.worker
        node = worker._global_node
        return (node is not None and node.head and hasattr(worker.global_worker, "core_worker")
                and not node.remaining_processes_alive())
    except Exception:
        return False


@contextmanager
def _sigterm_kept() -> Iterator[None]:
    """`ray.init` replaces the SIGTERM handler with one that exits (`sys.exit(15)`): a handler the
    caller installed (the CLI's, which stops the run and says what it kept) is put back."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if callable(before) and signal.getsignal(signal.SIGTERM) is not before:
            signal.signal(signal.SIGTERM, before)


def _kill_autoscaler_monitor() -> None:
    """Ray's shutdown stops its GCS before the autoscaler monitor of a cluster it started; the
    monitor's SIGTERM handler then reports to the gone GCS until Ray kills it a second later
    (measured: 1.0 s of a 1.4 s shutdown). The monitor of a one-node local cluster has nothing to
    save: kill it first. Nothing happens on a cluster this session joined (it started no monitor)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    try:
        if node is not None and node.head:
            node.kill_monitor(check_alive=False)
    except Exception:
        pass


@contextmanager
def engine_session(specs: list[Any], quiet: bool = False) -> Iterator[Any]:
    """An `EnginePool` of `specs` (every replica loaded and start-checked) for the block; shut
    down after it, and Ray with it if this session started Ray."""
    from synthfactory.engines.pool import EnginePool

    with ray_session(quiet=quiet):
        pool = EnginePool(specs)
        try:
            yield pool
        finally:
            pool.shutdown()
