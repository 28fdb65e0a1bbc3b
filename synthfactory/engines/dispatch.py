"""A work queue for engines that answer one request at a time (llama.cpp).

A call's requests wait here, not in one replica's own queue, cut into a few runs of consecutive
requests (never between requests that share a prompt prefix, which llama.cpp's prompt cache
serves together): every replica takes the next run the moment it is free. So a call is never
stuck behind a busy replica while another idles, and the rounds of different batches interleave. Engines that batch
(vLLM) or serve many requests at once (endpoints) keep their calls whole; the pool decides from
what each engine says of itself (`Engine.one_request_at_a_time`).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthfactory.engines.base import ChatRequest, ChatResult

log = logging.getLogger(__name__)

# requests in flight per replica: the second waits in the replica's own queue, so the engine starts
# it without a round trip to the driver (whose threads share the CPUs with the engines)
PIPELINE_DEPTH = 2


class ReplicaDied(Exception):
    """The replica's process died (or its node was lost) while it held a request."""


SendFn = Callable[[Any, list[ChatRequest]], list[ChatResult]]  # raises ReplicaDied, or the call's own error
ReviveFn = Callable[[Any], bool]  # blocks until the replica is back (True) or gone for good (False)


@dataclass
class _Call:
    """One caller's requests: results fill in request order; the first error ends the call."""

    results: list[ChatResult | None]
    left: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@dataclass
class _Job:
    """A run of a call's requests, from `index` on, that goes to one replica in one piece."""

    call: _Call
    index: int
    requests: list[ChatRequest]
    attempts: int = 0


def share_a_prefix(a: ChatRequest, b: ChatRequest) -> bool:
    """Requests llama.cpp's prompt cache serves together when they run one after the other: the
    same messages but the last, which share most of their beginning (a judge's criteria of one
    row: instruction and response first, the question last)."""
    if a.messages[:-1] != b.messages[:-1]:
        return False
    first, second = a.messages[-1].get("content", ""), b.messages[-1].get("content", "")
    return len(os.path.commonprefix([first, second])) >= 0.5 * min(len(first), len(second))


def runs_of(requests: list[ChatRequest], pieces: int) -> list[tuple[int, list[ChatRequest]]]:
    """A call cut into up to about `pieces` runs of consecutive requests (start index, requests),
    never between two that share a prompt prefix: each free replica takes a run, and the prefix
    cache still serves the requests of one run."""
    size = max(1, -(-len(requests) // max(1, pieces)))
    runs, start = [], 0
    while start < len(requests):
        end = min(len(requests), start + size)
        while end < len(requests) and share_a_prefix(requests[end - 1], requests[end]):
            end += 1
        runs.append((start, requests[start:end]))
        start = end
    return runs


class RequestQueue:
    """The requests of every call for one engine spec, handed out one at a time to its replicas.

    Each replica gets `depth` feeder threads; a feeder takes the oldest waiting run of requests,
    sends it and files the answers under its call. A replica that dies puts its run back at the head of
    the queue (its result, if any, is discarded: nothing runs twice to completion) and waits until
    Ray has restarted it; after `max_attempts` deaths of one request, or with every replica gone,
    the calls waiting fail with the error `gave_up` builds.
    """

    def __init__(self, replicas: Sequence[Any], send: SendFn, revive: ReviveFn, *, max_attempts: int,
                 gave_up: Callable[[Any, str], BaseException], closed: Callable[[], BaseException],
                 depth: int = PIPELINE_DEPTH) -> None:
        self._send, self._revive, self._gave_up, self._closed_error = send, revive, gave_up, closed
        self._max_attempts = max_attempts
        self._jobs: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False
        self._last_lost: Any = replicas[0] if replicas else None
        self._feeders = [threading.Thread(target=self._feed, args=(replica,), daemon=True,
                                          name=f"engine-feeder-{n}-{k}")
                         for n, replica in enumerate(replicas) for k in range(depth)]
        self._alive = len(self._feeders)
        for feeder in self._feeders:
            feeder.start()

    def run(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Every request answered, in request order; blocks. Raises the first error of the call."""
        if not requests:
            return []
        call = _Call(results=[None] * len(requests), left=len(requests))
        with self._ready:
            if self._closed:
                raise self._closed_error()
            if not self._alive:
                raise self._gave_up(self._last_lost, "every replica is gone")
            jobs = [_Job(call, start, run) for start, run in runs_of(requests, len(self._feeders))]
            self._jobs.extend(jobs)
            self._ready.notify(len(jobs))
        call.done.wait()
        if call.error is not None:
            raise call.error
        return list(call.results)  # type: ignore[arg-type]  # every slot is filled when done is set

    def close(self) -> None:
        """Stop handing out requests; calls still waiting fail (the run is stopping)."""
        with self._ready:
            self._closed = True
            waiting, self._jobs = list(self._jobs), collections.deque()
            self._ready.notify_all()
        for job in waiting:
            self._fail(job.call, self._closed_error())

    # -- the feeders -------------------------------------------------------------------------------
    def _next(self) -> _Job | None:
        with self._ready:
            while True:
                while not self._jobs and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return None
                job = self._jobs.popleft()
                if job.call.error is None:  # another request of a failed call: skip it
                    return job

    def _feed(self, replica: Any) -> None:
        try:
            while (job := self._next()) is not None:
                try:
                    results = self._send(replica, job.requests)
                except ReplicaDied:
                    if self._lost(replica, job):
                        return
                    continue
                except BaseException as exc:  # the call's own error (engine raised): its caller gets it
                    self._fail(job.call, exc)
                    continue
                self._file(job, results)
        finally:
            self._feeder_exits(replica)

    def _lost(self, replica: Any, job: _Job) -> bool:
        """Requeue the dead replica's request (or give it up), then wait for the replica to come
        back; True when it is gone for good or the queue closed (this feeder stops)."""
        job.attempts += 1
        with self._ready:
            self._last_lost = replica
            closed = self._closed
            if not closed and job.attempts <= self._max_attempts:
                self._jobs.appendleft(job)
                self._ready.notify()
        if closed:
            self._fail(job.call, self._closed_error())
            return True
        if job.attempts > self._max_attempts:
            self._fail(job.call, self._gave_up(replica, "repeatedly"))
        return self._closed or not self._revive(replica)

    def _file(self, job: _Job, results: list[ChatResult]) -> None:
        call = job.call
        with self._ready:
            if call.error is not None or call.results[job.index] is not None:
                return
            call.results[job.index:job.index + len(job.requests)] = results
            call.left -= len(job.requests)
            finished = call.left == 0
        if finished:
            call.done.set()

    def _fail(self, call: _Call, error: BaseException) -> None:
        with self._ready:
            if call.error is None and not call.done.is_set():
                call.error = error
        call.done.set()

    def _feeder_exits(self, replica: Any) -> None:
        """The last feeder to stop fails whatever still waits: no replica is left to run it."""
        with self._ready:
            self._alive -= 1
            stranded = [] if self._alive else list(self._jobs)
            if not self._alive:
                self._jobs.clear()
        for job in stranded:
            self._fail(job.call, self._closed_error() if self._closed else
                       self._gave_up(self._last_lost, "every replica is gone"))
