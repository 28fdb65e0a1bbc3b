"""Engines in Ray actors: created once per run, reused by every batch, load-balanced.

Prefect stays out of the actors: tasks call `EnginePool.chat`, which sends the batch to the
least-busy replica of the right model and waits for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import ray

from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec
from synthfactory.errors import EngineUnavailableError

log = logging.getLogger(__name__)


def ensure_ray() -> None:
    """Join the cluster at RAY_ADDRESS, or start a local one; reuse a running connection."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"log_to_driver": False, "ignore_reinit_error": True}
    if address is None:
        kwargs["include_dashboard"] = False
        # Ray nices workers to 15; llama.cpp threads sync by spinning, so every preemption by
        # orchestration stalls them all (measured: ~20% slower engines). Engines get normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=address, **kwargs)


@ray.remote(max_restarts=2, max_task_retries=2)
class EngineActor:
    """One replica of one model; the model loads once in __init__."""

    def __init__(self, spec: EngineSpec) -> None:
        from synthfactory.engines import create_engine

        _normal_priority()
        self.spec = spec
        self.engine = create_engine(spec)
        self.requests = 0
        self.busy_seconds = 0.0

    def ready(self) -> dict[str, Any]:
        return {"model": self.spec.model, "node_id": ray.get_runtime_context().get_node_id(),
                "load_seconds": getattr(self.engine, "load_seconds", 0.0)}

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        started = time.perf_counter()
        try:
            return self.engine.chat(requests)
        finally:
            self.requests += len(requests)
            self.busy_seconds += time.perf_counter() - started

    def stats(self) -> dict[str, Any]:
        return {"model": self.spec.model, "requests": self.requests, "busy_seconds": self.busy_seconds}


def _normal_priority() -> None:
    """Undo Ray's worker niceness on clusters we joined but did not start (needs CAP_SYS_NICE)."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        log.warning("engine runs at Ray's lowered worker priority; start the cluster with RAY_worker_niceness=0")


class EnginePool:
    """Replicas per engine spec; equal specs (self-grading) share the same actors."""

    def __init__(self, specs: list[EngineSpec], ready_timeout_s: float = 600.0) -> None:
        ensure_ray()
        total_cpus = float(ray.cluster_resources().get("CPU", 1.0))
        unique = list({s.key: s for s in specs}.values())
        replicas = {s.key: s.replicas or max(1, int(total_cpus / s.threads / len(unique))) for s in unique}
        wanted = sum(s.threads * replicas[s.key] for s in unique)
        share = min(1.0, total_cpus / wanted)  # oversubscribed: scale logical CPUs down
        self._actors: dict[str, list[Any]] = {}
        self._inflight: dict[int, int] = {}
        self._lock = threading.Lock()
        for spec in specs:
            if spec.key in self._actors:
                continue
            cpus = round(spec.threads * share, 2)
            self._actors[spec.key] = [
                EngineActor.options(num_cpus=cpus).remote(spec) for _ in range(replicas[spec.key])
            ]
        handles = [a for group in self._actors.values() for a in group]
        refs = [a.ready.remote() for a in handles]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=ready_timeout_s)
        if pending:
            self.shutdown()
            raise EngineUnavailableError(
                f"engines did not start within {ready_timeout_s:.0f}s: the Ray cluster has "
                f"{ray.cluster_resources().get('CPU', 0)} CPUs; lower generation.options.replicas or threads"
            )
        try:
            self.replicas = ray.get(ready)
        except ray.exceptions.RayActorError as exc:
            self.shutdown()
            cause = exc.__cause__ or exc
            raise EngineUnavailableError(f"engine failed to start: {str(cause).splitlines()[-1]}") from None
        for handle in handles:
            self._inflight[id(handle)] = 0

    def chat(self, spec: EngineSpec, requests: list[ChatRequest]) -> list[ChatResult]:
        """Run `requests` on the least-busy replica for `spec`; blocks until done."""
        if not requests:
            return []
        with self._lock:
            actor = min(self._actors[spec.key], key=lambda a: self._inflight[id(a)])
            self._inflight[id(actor)] += 1
        try:
            return ray.get(actor.chat.remote(requests))
        finally:
            with self._lock:
                self._inflight[id(actor)] -= 1

    def stats(self) -> dict[str, Any]:
        """Requests served and busy seconds, summed over every replica."""
        rows = ray.get([a.stats.remote() for group in self._actors.values() for a in group])
        return {"replicas": len(rows), "requests": sum(r["requests"] for r in rows),
                "busy_seconds": sum(r["busy_seconds"] for r in rows)}

    def shutdown(self) -> None:
        for group in self._actors.values():
            for actor in group:
                ray.kill(actor)
        self._actors.clear()
