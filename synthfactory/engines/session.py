"""Engines for one command: Ray joined or started, the pool up, and both gone on exit.

`synthfactory run`, `calibrate` and `preview` (and `run_recipe`) hold engines this way instead of
each starting and stopping Ray and a pool themselves.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def ray_session(quiet: bool = False) -> Iterator[None]:
    """Join the cluster at RAY_ADDRESS or start a local one (from this thread: Ray started in a
    worker thread takes ~15 s to shut down); on exit leave it, stopping the local processes, if
    this session connected: left to exit hooks, Ray's agents outlive the command and hold its
    output pipes open."""
    import ray

    from synthfactory.engines.pool import ensure_ray

    connected_before = ray.is_initialized()
    ensure_ray(quiet=quiet)
    try:
        yield
    finally:
        if not connected_before and ray.is_initialized():
            _kill_autoscaler_monitor()
            ray.shutdown()


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
    except Exception:  # noqa: BLE001 - Ray's own shutdown still stops it, a second later
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
