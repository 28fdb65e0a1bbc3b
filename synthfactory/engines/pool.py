"""Engines in Ray actors: created once per run, reused by every batch, load-balanced.

Prefect stays out of the actors: tasks call `EnginePool.chat`, which waits for the answers. An
engine that answers one request at a time (llama.cpp) gets its requests in short runs from a work
queue shared by every call (`dispatch.RequestQueue`), so no replica idles while requests wait;
an engine that batches (vLLM) or serves many at once (endpoints) gets each call whole, on the
least-busy replica.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import ray

from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec
from synthfactory.engines.crash import crash_cause, report_faults, start_failure, worker_log
from synthfactory.engines.dispatch import ReplicaDied, RequestQueue
from synthfactory.engines.placement import actor_options, default_replicas, gpu_capacity, placed
from synthfactory.errors import EngineFailure, SynthfactoryError
from synthfactory.model.metadata import EngineStats

log = logging.getLogger(__name__)


def ensure_ray(quiet: bool = False) -> None:
    """Join the cluster at RAY_ADDRESS, or start a local one; reuse a running connection.
    `quiet`: Ray's own start-up notices (token, dashboard) are not printed, only its errors."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"log_to_driver": False, "ignore_reinit_error": True}
    if quiet:
        kwargs["logging_level"] = logging.ERROR
    if address is None:
        kwargs["include_dashboard"] = False
        # Ray nices workers to 15; llama.cpp threads sync by spinning, so every preemption by
        # orchestration stalls them all (measured: ~20% slower engines). Engines get normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=address, **kwargs)


@dataclass(frozen=True)
class ReplicaStats:
    """What one replica served since it (last) started: its counts go with it when it dies."""

    model: str
    requests: int
    busy_seconds: float  # seconds any call was in flight (overlapping calls count once)
    node_id: str


MAX_RESTARTS = 2  # a replica that keeps dying is not restarted forever: then the run fails with the cause


@ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=0)  # a dead actor is restarted; the pool retries its batch
class EngineActor:
    """One replica of one model. `where` answers at once; `ready` loads the model and proves it
    can generate (a one-token start check), so a crash shows before any batch is planned. A native
    crash (SIGSEGV in a kernel, an abort) is written by `faulthandler` to the replica's fault report."""

    def __init__(self, spec: EngineSpec, fault_report: str) -> None:
        _normal_priority()
        self.spec = spec
        self.engine: Any = None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.requests = 0
        self.busy_seconds = 0.0
        self._active = 0  # calls in flight now
        self._busy_since = 0.0
        self._count = threading.Lock()  # vLLM's and the openai engine's actors serve many calls at once
        self._load = threading.Lock()
        self._where = {"pid": os.getpid(), "node_id": self.node_id, "worker_log": worker_log(),
                       "fault_report": fault_report}
        report_faults(fault_report, self._where)

    def where(self) -> dict[str, Any]:
        return self._where

    def ready(self) -> dict[str, Any]:
        self._ensure_engine()
        return {"model": self.spec.model, "node_id": self.node_id,
                "load_seconds": getattr(self.engine, "load_seconds", 0.0),
                "one_request_at_a_time": bool(getattr(self.engine, "one_request_at_a_time", False))}

    def _ensure_engine(self) -> None:
        """Load and check once (again after Ray restarted this replica)."""
        from synthfactory.engines import create_engine
        from synthfactory.engines.base import start_check

        with self._load:
            if self.engine is None:
                engine = create_engine(self.spec)
                start_check(engine, self.spec)
                self.engine = engine

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Busy time is the time any call was in flight: calls that overlap (vLLM and endpoints
        serve many at once) count once."""
        self._ensure_engine()
        with self._count:
            if self._active == 0:
                self._busy_since = time.perf_counter()
            self._active += 1
        try:
            results = self.engine.chat(requests)
        finally:
            with self._count:
                self.requests += len(requests)
                self._active -= 1
                if self._active == 0:
                    self.busy_seconds += time.perf_counter() - self._busy_since
        for result in results:
            result.node_id = self.node_id
        return results

    def stats(self) -> ReplicaStats:
        return ReplicaStats(self.spec.model, self.requests, self.busy_seconds, self.node_id)

    def engine_stats(self) -> dict[str, Any]:
        """What the engine itself counts (vLLM: the most requests it ran in one step), or {}."""
        stats = getattr(self.engine, "stats", None)
        return stats() if callable(stats) else {}

    def close(self) -> None:
        """Free the engine's resources (vLLM: shut its engine core down) before the pool kills us."""
        engine, self.engine = self.engine, None
        if engine is not None and callable(getattr(engine, "close", None)):
            engine.close()


def _normal_priority() -> None:
    """Undo Ray's worker niceness on clusters we joined but did not start (needs CAP_SYS_NICE)."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        log.warning("engine runs at Ray's lowered worker priority; start the cluster with RAY_worker_niceness=0")


class EnginePool:
    """Replicas per engine spec; equal specs (self-grading) share the same actors.

    A replica that dies (process crash, its node lost) is left to Ray to restart; the call (or,
    for a one-request-at-a-time engine, the request) it was running is sent again to another
    live replica, so a run finishes on what is left.
    """

    def __init__(self, specs: list[EngineSpec], ready_timeout_s: float = 600.0) -> None:
        ensure_ray()
        cluster = ray.cluster_resources()
        settled = [placed(s, cluster) for s in specs]  # as they run here (vLLM's device: auto settled)
        # the callers' keys -> the actors' keys
        self._alias = {s.key: p.key for s, p in zip(specs, settled, strict=True)}
        specs = settled
        unique = list({s.key: s for s in specs}.values())
        replicas = {s.key: default_replicas(s, cluster, len(unique)) for s in unique}
        gpu_capacity(unique, replicas, cluster)
        # requests the batching engines (vLLM) take at once: the run keeps enough batches in flight
        self.requests_batched = sum(s.backend.batching(s) * replicas[s.key] for s in unique)
        wanted = sum(s.backend.cpu_threads(s) * replicas[s.key] for s in unique)  # CPU-bound engines' threads
        share = min(1.0, float(cluster.get("CPU", 1.0)) / wanted) if wanted else 1.0  # oversubscribed: scale down
        self._actors: dict[str, list[Any]] = {}
        self._inflight: dict[int, int] = {}
        self._dead: set[int] = set()
        self._probes: dict[int, tuple[Any, Any]] = {}  # dead replica -> its pending `ready` call
        self._queues: dict[str, RequestQueue] = {}  # spec key -> its work queue (one-request-at-a-time engines)
        self._lock = threading.Lock()
        self.retried_batches = 0
        self._closed = False
        self._groups: list[Any] = []
        self._where: dict[int, dict[str, Any]] = {}  # replica -> its pid, node, worker log, fault report
        self._specs: dict[int, EngineSpec] = {}
        self._reports = reports = Path(tempfile.gettempdir()) / "synthfactory-engines" / uuid.uuid4().hex[:12]
        for spec in specs:
            if spec.key in self._actors:
                continue
            self._actors[spec.key] = []
            for index in range(replicas[spec.key]):
                options, group = actor_options(spec, share)
                self._groups += [group] if group is not None else []
                report = reports / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', spec.key)[-80:]}-{index}.faults"
                # @ray.remote made the class an ActorClass; mypy keeps the undecorated class's type
                actor = EngineActor.options(**options).remote(spec, str(report))  # type: ignore[attr-defined]
                self._actors[spec.key].append(actor)
                self._specs[id(actor)] = spec
                self._where[id(actor)] = {"fault_report": str(report)}  # until the replica says where it runs
        handles = [a for group in self._actors.values() for a in group]
        self.replicas = self._start(handles, cluster, ready_timeout_s)
        self.ready_at = time.perf_counter()  # every replica passed its start check: `busy_share` counts from here
        for handle in handles:
            self._inflight[id(handle)] = 0
        answers = {id(a): answer for a, answer in zip(handles, self.replicas, strict=True)}
        for key, group in self._actors.items():
            if all(answers[id(a)]["one_request_at_a_time"] for a in group):
                spec = self._specs[id(group[0])]
                self._queues[key] = RequestQueue(
                    group, self._send, self._back, max_attempts=(MAX_RESTARTS + 1) * len(group),
                    gave_up=partial(self._gave_up, spec), closed=partial(self._shut, spec))

    def _start(self, handles: list[Any], cluster: dict[str, float], timeout_s: float) -> list[dict[str, Any]]:
        """Wait for every replica to load and pass its start check; stop at the first that fails,
        so a crash costs seconds, not a run's worth of retried batches."""
        where_refs = {id(a): a.where.remote() for a in handles}
        pending = {a.ready.remote(): a for a in handles}
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                self.shutdown()
                raise EngineFailure(
                    f"engines did not start within {timeout_s:.0f}s: the Ray cluster has "
                    f"{cluster.get('CPU', 0)} CPUs and {cluster.get('GPU', 0)} GPUs; "
                    "lower generation.options.replicas or threads")
            actor = pending.pop(done[0])
            try:
                answers[id(actor)] = ray.get(done[0])
            except Exception as exc:  # every way a replica can fail to start ends the run here
                spec = self._specs[id(actor)]
                where = self._where_of(actor, where_refs) or self._where[id(actor)]
                self.shutdown()
                raise start_failure(spec, exc, where) from None
        for actor in handles:
            self._where[id(actor)] = self._where_of(actor, where_refs) or self._where[id(actor)]
        return [answers[id(a)] for a in handles]

    @staticmethod
    def _where_of(actor: Any, where_refs: dict[int, Any]) -> dict[str, Any] | None:
        try:
            return ray.get(where_refs[id(actor)], timeout=5)
        except Exception:  # the replica died before it could say where it ran
            return None

    def chat(self, spec: EngineSpec, requests: list[ChatRequest]) -> list[ChatResult]:
        """Answers to `requests`, in order; blocks until done. A one-request-at-a-time engine's
        requests go through its work queue, each to the next free replica; otherwise the whole
        call goes to the least-busy live replica.

        If the replica dies mid-call, the call (or the request) goes to another live replica
        (results of a failed call are discarded, so nothing is duplicated); with none left, one
        that Ray has restarted is tried again.
        """
        if not requests:
            return []
        if self._closed:  # the run is stopping (another batch failed): don't wait on restarts
            raise self._shut(spec)
        key = self._alias.get(spec.key, spec.key)
        if key in self._queues:
            return self._queues[key].run(requests)
        group = self._actors.get(key, [])
        attempts = 0
        while True:
            if self._closed:
                raise self._shut(spec)
            with self._lock:
                self._revive()
                live = [a for a in group if id(a) not in self._dead] or group  # all dead: try restarted ones
                actor = min(live, key=lambda a: self._inflight[id(a)])
                self._inflight[id(actor)] += 1
            try:
                return ray.get(actor.chat.remote(requests))
            except ray.exceptions.RayTaskError as exc:  # the engine raised: infrastructure (our errors) or a bug
                cause = exc.cause
                if isinstance(cause, SynthfactoryError):
                    raise cause from None
                raise
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                attempts += 1
                with self._lock:
                    self._dead.add(id(actor))
                    self._probes.setdefault(id(actor), (actor, actor.ready.remote()))  # answers once Ray restarted it
                    self.retried_batches += 1
                log.warning("engine replica died (%s); retrying its batch on another replica (attempt %d)",
                            type(exc).__name__, attempts)
                if attempts > (MAX_RESTARTS + 1) * len(group):
                    raise EngineFailure(crash_cause(spec, self._where.get(id(actor)), "repeatedly (every replica, "
                                                    f"after {MAX_RESTARTS} restarts each)")) from None
                if len(self._dead & {id(a) for a in group}) == len(group):
                    time.sleep(min(10.0, 2.0 * attempts))  # give Ray time to restart one
                    with self._lock:
                        self._dead -= {id(a) for a in group}
            finally:
                with self._lock:
                    self._inflight[id(actor)] -= 1

    def _send(self, actor: Any, requests: list[ChatRequest]) -> list[ChatResult]:
        """One call on one replica, for the work queue: the engine's own errors as they are, a
        replica that died as `ReplicaDied` (counted, and the replica left out until it is back)."""
        with self._lock:
            self._inflight[id(actor)] += 1
        try:
            return ray.get(actor.chat.remote(requests))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, SynthfactoryError):
                raise exc.cause from None
            raise
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            with self._lock:
                self._dead.add(id(actor))
                self.retried_batches += 1
            if not self._closed:
                log.warning("engine replica died (%s); its request goes to the next free replica", type(exc).__name__)
            raise ReplicaDied() from None
        finally:
            with self._lock:
                self._inflight[id(actor)] -= 1

    def _back(self, actor: Any) -> bool:
        """Block until Ray has restarted `actor` (its `ready` answers): True; False when it is gone
        for good (out of restarts, or the pool shut down)."""
        while not self._closed:
            try:
                ray.get(actor.ready.remote())
            except ray.exceptions.ActorUnavailableError:
                time.sleep(1.0)  # restarting: ask again
                continue
            except ray.exceptions.RayActorError:
                return False
            with self._lock:
                self._dead.discard(id(actor))
            log.info("engine replica is back after a restart")
            return True
        return False

    def _gave_up(self, spec: EngineSpec, actor: Any, how: str) -> EngineFailure:
        return EngineFailure(crash_cause(spec, self._where.get(id(actor)), f"{how} (every replica, "
                                         f"after {MAX_RESTARTS} restarts each)"))

    @staticmethod
    def _shut(spec: EngineSpec) -> EngineFailure:
        return EngineFailure(f"engine {spec.engine} (model {spec.model}): the run's engines were shut down")

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

    def stats(self) -> EngineStats:
        """Requests served and busy seconds, summed over every replica still reachable, and their
        `busy_share`: busy engine-seconds / (seconds since every replica passed its start check x
        those replicas). Called when the last batch is done, it is the share of the run's engine
        time spent answering requests. `ready_seconds` is the run's to fill (None here)."""
        up = time.perf_counter() - self.ready_at
        rows: list[ReplicaStats] = []
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
        busy = sum(r.busy_seconds for r in rows)
        return EngineStats(replicas=len(rows), requests=sum(r.requests for r in rows), busy_seconds=busy,
                           busy_share=round(busy / (up * len(rows)), 4) if rows and up > 0 else None,
                           batches_retried=self.retried_batches, nodes=sorted({r.node_id for r in rows}))

    def shutdown(self, close_timeout_s: float = 60.0) -> None:
        """Ask every vLLM replica to close its engine (its engine core process holds GPU memory
        and can outlive a killed actor; see `VLLMEngine.close`), wait up to `close_timeout_s`, then
        kill the actors and give placement groups back. CPU engines are killed at once: their
        memory goes with their process, and a failing run should not wait for batches in flight."""
        self._closed = True
        for queue in self._queues.values():
            queue.close()  # calls waiting for a replica fail now; those in flight when their actor is killed
        actors = [actor for group in self._actors.values() for actor in group]
        closing = [actor.close.remote() for actor in actors if self._specs[id(actor)].backend.close_before_kill]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=close_timeout_s)
        for actor in actors:
            ray.kill(actor)
        self._actors.clear()
        from ray.util.placement_group import remove_placement_group

        for placement in self._groups:  # give the GPUs back to the cluster
            remove_placement_group(placement)
        self._groups.clear()
        self._forget_reports()

    def _forget_reports(self) -> None:
        """Keep fault reports only where something crashed (a local cluster writes them here)."""
        import shutil

        files = list(self._reports.glob("*.faults")) if self._reports.is_dir() else []
        if not any("Fatal Python error" in f.read_text(encoding="utf-8", errors="replace") for f in files):
            shutil.rmtree(self._reports, ignore_errors=True)


