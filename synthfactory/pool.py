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


@ray.remote(max_restarts=2, max_task_retries=0)  # a dead actor is restarted; the pool retries its batch
class EngineActor:
    """One replica of one model; the model loads once in __init__."""

    def __init__(self, spec: EngineSpec) -> None:
        from synthfactory.engines import create_engine

        _normal_priority()
        self.spec = spec
        self.engine = create_engine(spec)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.requests = 0
        self.busy_seconds = 0.0
        self._count = threading.Lock()  # the openai engine's actor serves many calls at once

    def ready(self) -> dict[str, Any]:
        return {"model": self.spec.model, "node_id": self.node_id,
                "load_seconds": getattr(self.engine, "load_seconds", 0.0)}

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        started = time.perf_counter()
        try:
            results = self.engine.chat(requests)
        finally:
            with self._count:
                self.requests += len(requests)
                self.busy_seconds += time.perf_counter() - started
        for result in results:
            result.node_id = self.node_id
        return results

    def stats(self) -> dict[str, Any]:
        return {"model": self.spec.model, "requests": self.requests, "busy_seconds": self.busy_seconds,
                "node_id": self.node_id}


def _normal_priority() -> None:
    """Undo Ray's worker niceness on clusters we joined but did not start (needs CAP_SYS_NICE)."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        log.warning("engine runs at Ray's lowered worker priority; start the cluster with RAY_worker_niceness=0")


def default_replicas(spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
    """llamacpp: fill the CPUs; vllm: one replica per `tensor_parallel_size` GPUs; openai: one actor
    (it is I/O-bound and serves many batches at once)."""
    if spec.replicas:
        return spec.replicas
    if spec.engine == "openai":
        return 1
    if spec.engine == "vllm":
        gpus = int(cluster.get("GPU", 0))
        if gpus < spec.tensor_parallel_size:
            raise EngineUnavailableError(
                f"engine vllm: the Ray cluster has {gpus} GPUs, a replica needs {spec.tensor_parallel_size} "
                "(generation.options.tensor_parallel_size); use engine llamacpp on CPU")
        return max(1, gpus // spec.tensor_parallel_size // groups)
    return max(1, int(cluster.get("CPU", 1.0) / spec.threads / groups))


def _actor_options(spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
    """Ray resources per replica: llama.cpp threads as CPUs, vLLM GPUs (a placement group for
    tensor parallelism; returned too, so the pool removes it at shutdown), and a thread pool for
    endpoint calls."""
    if spec.engine == "openai":
        return {"num_cpus": 0.1, "max_concurrency": 64}, None
    if spec.engine == "vllm":
        if spec.tensor_parallel_size == 1:
            return {"num_cpus": 1, "num_gpus": 1}, None
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = placement_group([{"GPU": 1, "CPU": 1}] * spec.tensor_parallel_size, strategy="STRICT_PACK")
        # the actor itself takes no GPU: vLLM's Ray executor puts one worker per bundle
        return {"num_cpus": 0, "num_gpus": 0, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_capture_child_tasks=True)}, group
    return {"num_cpus": round(spec.threads * cpu_share, 2)}, None


class EnginePool:
    """Replicas per engine spec; equal specs (self-grading) share the same actors.

    A replica that dies (process crash, its node lost) is left to Ray to restart; the batch it
    was running is sent again to another live replica, so a run finishes on what is left.
    """

    def __init__(self, specs: list[EngineSpec], ready_timeout_s: float = 600.0) -> None:
        ensure_ray()
        cluster = ray.cluster_resources()
        unique = list({s.key: s for s in specs}.values())
        replicas = {s.key: default_replicas(s, cluster, len(unique)) for s in unique}
        cpu_bound = [s for s in unique if s.engine == "llamacpp"]
        wanted = sum(s.threads * replicas[s.key] for s in cpu_bound)
        share = min(1.0, float(cluster.get("CPU", 1.0)) / wanted) if wanted else 1.0  # oversubscribed: scale down
        self._actors: dict[str, list[Any]] = {}
        self._inflight: dict[int, int] = {}
        self._dead: set[int] = set()
        self._probes: dict[int, tuple[Any, Any]] = {}  # dead replica -> its pending `ready` call
        self._lock = threading.Lock()
        self.retried_batches = 0
        self._groups: list[Any] = []
        for spec in specs:
            if spec.key in self._actors:
                continue
            self._actors[spec.key] = []
            for _ in range(replicas[spec.key]):
                options, group = _actor_options(spec, share)
                self._groups += [group] if group is not None else []
                self._actors[spec.key].append(EngineActor.options(**options).remote(spec))
        handles = [a for group in self._actors.values() for a in group]
        refs = [a.ready.remote() for a in handles]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=ready_timeout_s)
        if pending:
            self.shutdown()
            raise EngineUnavailableError(
                f"engines did not start within {ready_timeout_s:.0f}s: the Ray cluster has "
                f"{cluster.get('CPU', 0)} CPUs and {cluster.get('GPU', 0)} GPUs; "
                "lower generation.options.replicas or threads"
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
        """Run `requests` on the least-busy live replica for `spec`; blocks until done.

        If the replica dies mid-batch, the whole batch goes to another live replica (results of a
        failed call are discarded, so nothing is duplicated); with none left, one that Ray has
        restarted is tried again.
        """
        if not requests:
            return []
        group = self._actors[spec.key]
        attempts = 0
        while True:
            with self._lock:
                self._revive()
                live = [a for a in group if id(a) not in self._dead] or group  # all dead: try restarted ones
                actor = min(live, key=lambda a: self._inflight[id(a)])
                self._inflight[id(actor)] += 1
            try:
                return ray.get(actor.chat.remote(requests))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                attempts += 1
                with self._lock:
                    self._dead.add(id(actor))
                    self._probes.setdefault(id(actor), (actor, actor.ready.remote()))  # answers once Ray restarted it
                    self.retried_batches += 1
                log.warning("engine replica died (%s); retrying its batch on another replica (attempt %d)",
                            type(exc).__name__, attempts)
                if attempts > 2 * len(group) + 2:
                    raise EngineUnavailableError(f"every replica of {spec.model} died: {exc}") from None
                if len(self._dead & {id(a) for a in group}) == len(group):
                    time.sleep(min(10.0, 2.0 * attempts))  # give Ray time to restart one
                    with self._lock:
                        self._dead -= {id(a) for a in group}
            finally:
                with self._lock:
                    self._inflight[id(actor)] -= 1

    def _revive(self) -> None:
        """Replicas Ray has restarted (their `ready` call answered) take batches again."""
        if not self._probes:
            return
        done, _ = ray.wait([ref for _, ref in self._probes.values()], num_returns=len(self._probes), timeout=0)
        for key, (actor, ref) in list(self._probes.items()):
            if ref not in done:
                continue
            try:
                ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self._probes[key] = (actor, actor.ready.remote())  # still restarting: ask again
                continue
            del self._probes[key]
            self._dead.discard(key)
            log.info("engine replica is back after a restart")

    def stats(self) -> dict[str, Any]:
        """Requests served and busy seconds, summed over every replica still reachable."""
        rows = []
        with self._lock:
            self._revive()
        for group in self._actors.values():
            for actor in group:
                if id(actor) in self._dead:
                    continue  # lost (its node gone): its counts went with it
                try:
                    rows.append(ray.get(actor.stats.remote(), timeout=30))
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError,
                        ray.exceptions.ActorUnavailableError):
                    continue  # a replica lost with its node: its counts went with it
        return {"replicas": len(rows), "requests": sum(r["requests"] for r in rows),
                "busy_seconds": sum(r["busy_seconds"] for r in rows), "retried_batches": self.retried_batches,
                "nodes": sorted({r["node_id"] for r in rows})}

    def shutdown(self) -> None:
        for group in self._actors.values():
            for actor in group:
                ray.kill(actor)
        self._actors.clear()
        from ray.util.placement_group import remove_placement_group

        for placement in self._groups:  # give the GPUs back to the cluster
            remove_placement_group(placement)
        self._groups.clear()
