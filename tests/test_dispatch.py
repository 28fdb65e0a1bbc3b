"""The per-request work queue (`engines/dispatch.py`) with stub replicas in threads: every free
replica takes the next request, results come back in request order, a dead replica's request is
run again elsewhere and counted once, an engine's error reaches its caller. Seconds, no Ray."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.engines.dispatch import ReplicaDied, RequestQueue, runs_of
from synthfactory.errors import EngineFailure


def ask(text: str, seconds: float = 0.01) -> ChatRequest:
    """A request whose stub answer is its own text, after `seconds` (carried in max_tokens, in ms)."""
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=max(1, int(seconds * 1000)))


class Gate:
    """Holds a request on whichever replica runs it: `started` is set when it begins, and it runs
    until `release` is set. Tests wait on these events, never on how long something takes."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()


class StubReplica:
    """An engine that answers one request at a time (like llama.cpp); records what it ran."""

    def __init__(self, name: str, gates: dict[str, Gate] | None = None) -> None:
        self.name = name
        self.ran: list[str] = []
        self.busy = threading.Lock()
        self.die_on: set[str] = set()  # requests during which this replica's process dies
        self.gone = False  # dead for good (out of restarts)
        self.gates = gates or {}  # requests (by text) held until their gate is released

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        with self.busy:  # one request at a time, as the engine runs them
            results, ran = [], []
            for request in requests:
                text = request.messages[0]["content"]
                if text in self.gates:
                    self.gates[text].started.set()
                    assert self.gates[text].release.wait(60), f"{text} was never released"
                else:
                    time.sleep(request.max_tokens / 1000)
                if text in self.die_on or text.startswith("poison"):  # poison: kills every replica
                    self.die_on.discard(text)
                    raise ReplicaDied()
                if text == "boom":
                    raise EngineFailure("engine stub: boom")
                ran.append(text)
                results.append(ChatResult(text, "stop", 1, 1, request.max_tokens / 1000, node_id=self.name))
            self.ran += ran  # a call that died mid-way returned nothing: its work does not count
            return results


def make_queue(replicas: list[StubReplica], max_attempts: int = 3, depth: int = 1) -> RequestQueue:
    return RequestQueue(replicas, lambda replica, requests: replica.chat(requests), lambda replica: not replica.gone,
                        max_attempts=max_attempts, gave_up=lambda replica, how: EngineFailure(f"gave up: {how}"),
                        closed=lambda: EngineFailure("shut down"), depth=depth)


def texts(results: list[ChatResult]) -> list[str]:
    return [r.text for r in results]


@pytest.mark.parametrize("depth", [1, 2])
def test_concurrent_calls_get_their_answers_in_request_order_and_every_replica_works(depth):
    replicas = [StubReplica("a"), StubReplica("b")]
    queue = make_queue(replicas, depth=depth)
    calls = [[ask(f"call{c}-req{r}", 0.002 * (1 + (c + r) % 3)) for r in range(8)] for c in range(6)]
    with ThreadPoolExecutor(6) as threads:
        answers = list(threads.map(queue.run, calls))
    for call, answer in zip(calls, answers, strict=True):
        assert texts(answer) == [r.messages[0]["content"] for r in call]
    ran = replicas[0].ran + replicas[1].ran
    assert sorted(ran) == sorted(r.messages[0]["content"] for call in calls for r in call)  # each exactly once
    assert replicas[0].ran and replicas[1].ran
    assert queue.run([]) == []


def test_a_call_is_not_stuck_behind_a_busy_replica_while_another_is_free():
    """The old pool sent a whole call to one replica; here a second call's requests all go to the
    replica that is free, while the first call's long request still runs on the other."""
    gates = {"long": Gate()}
    a, b = StubReplica("a", gates), StubReplica("b", gates)
    queue = make_queue([a, b])
    with ThreadPoolExecutor(2) as threads:
        long_call = threads.submit(queue.run, [ask("long")])
        assert gates["long"].started.wait(30)  # the long request runs on one replica (until released)
        try:
            short = threads.submit(queue.run, [ask(f"short{i}", 0.02) for i in range(5)]).result(timeout=30)
            # the short call is answered while the long request still runs: not stuck behind it
            assert not long_call.done()
        finally:
            gates["long"].release.set()
        assert texts(long_call.result(timeout=30)) == ["long"]
    assert texts(short) == [f"short{i}" for i in range(5)]
    busy_with_long = a if "long" in a.ran else b
    assert busy_with_long.ran == ["long"]  # every short request went to the free replica


def test_a_replica_that_dies_has_its_request_run_elsewhere_once_and_the_call_completes():
    a, b = StubReplica("a"), StubReplica("b")
    a.die_on = {"r1", "r5"}
    b.die_on = {"r1"}  # r1 dies on whichever replica runs it, twice; it still completes, once
    queue = make_queue([a, b], max_attempts=3)
    answer = queue.run([ask(f"r{i}", 0.01) for i in range(8)])
    assert texts(answer) == [f"r{i}" for i in range(8)]
    assert sorted(a.ran + b.ran) == sorted(f"r{i}" for i in range(8))  # none lost, none twice


def test_a_request_that_keeps_killing_replicas_fails_its_call_and_no_other():
    queue = make_queue([StubReplica("a"), StubReplica("b")], max_attempts=1)
    with pytest.raises(EngineFailure, match="gave up: repeatedly"):
        queue.run([ask("fine"), ask("poison")])
    assert texts(queue.run([ask("next")])) == ["next"]


def test_when_every_replica_is_gone_waiting_calls_fail_with_the_cause():
    a = StubReplica("a")
    a.die_on, a.gone = {"r0"}, True
    queue = make_queue([a])
    with pytest.raises(EngineFailure, match="gave up: every replica is gone"):
        queue.run([ask("r0"), ask("r1")])
    with pytest.raises(EngineFailure, match="every replica is gone"):
        queue.run([ask("r2")])


def test_one_replica_gone_for_good_leaves_the_work_to_the_others():
    a, b = StubReplica("a"), StubReplica("b")
    a.die_on, a.gone = {f"r{i}" for i in range(6)}, True  # dies on its first request, never comes back
    queue = make_queue([a, b])
    assert texts(queue.run([ask(f"r{i}") for i in range(6)])) == [f"r{i}" for i in range(6)]
    assert sorted(b.ran) == [f"r{i}" for i in range(6)] and not a.ran


def test_an_engine_error_reaches_its_caller_and_the_rest_of_that_call_is_skipped():
    a = StubReplica("a")
    queue = make_queue([a])
    with pytest.raises(EngineFailure, match="boom"):
        queue.run([ask("boom"), ask("after-boom", 0.05)])
    assert "after-boom" not in a.ran
    assert texts(queue.run([ask("ok")])) == ["ok"]


def test_close_fails_the_calls_still_waiting_and_refuses_new_ones():
    gates = {"slow": Gate()}
    a = StubReplica("a", gates)
    queue = make_queue([a])  # one replica, one feeder: "queued" waits while "slow" runs
    with ThreadPoolExecutor(2) as threads:
        running = threads.submit(queue.run, [ask("slow")])
        assert gates["slow"].started.wait(30)
        waiting = threads.submit(queue.run, [ask("queued")])
        deadline = time.monotonic() + 30
        while not queue._jobs and time.monotonic() < deadline:  # "queued" is in the queue, not yet run
            time.sleep(0.01)
        assert queue._jobs and not waiting.done()
        queue.close()
        gates["slow"].release.set()
        assert texts(running.result(timeout=30)) == ["slow"]  # what was running finishes
        with pytest.raises(EngineFailure, match="shut down"):
            waiting.result(timeout=30)
    with pytest.raises(EngineFailure, match="shut down"):
        queue.run([ask("late")])


def test_requests_that_share_a_prompt_prefix_stay_together_on_one_replica():
    """A judge's criteria of one row share the row's text first: they go to one replica in one
    run, so llama.cpp's prompt cache serves them; rows are spread over the replicas."""
    rows = [ask(f"row {i}: " + "the instruction and the response " * 3 + f"criterion {j}") for i in range(4)
            for j in range(3)]
    assert [start for start, _ in runs_of(rows, 2)] == [0, 6]
    assert [start for start, _ in runs_of(rows, 4)] == [0, 3, 6, 9]
    assert [start for start, _ in runs_of([ask(f"{i} unrelated") for i in range(5)], 2)] == [0, 3]
    a, b = StubReplica("a"), StubReplica("b")
    answer = make_queue([a, b]).run(rows)
    assert texts(answer) == [r.messages[0]["content"] for r in rows]
    for replica in (a, b):
        served_rows = {text.split(":")[0] for text in replica.ran}
        assert len(replica.ran) == 3 * len(served_rows)  # every criterion of a row it served
