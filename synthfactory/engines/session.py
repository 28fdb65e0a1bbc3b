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
            ray.shutdown()


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
