"""The vLLM path's logic on CPU: a stand-in for `LLM.chat` that rejects a whole call for one bad
request (as vLLM does), prompt-length checks, engine shutdown, and GPU capacity planning. The
real-vLLM test is in test_scale.py and runs where a GPU and vllm exist."""

from __future__ import annotations

import threading
import time

import pytest

from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec, isolate_failures
from synthfactory.engines.vllm import close_vllm, prompt_too_long
from synthfactory.errors import EngineUnavailableError
from synthfactory.pool import default_replicas, gpu_capacity
from synthfactory.recipe import load_recipe
from tests.conftest import make_recipe


class VLLMValidationError(ValueError):
    """What vllm.exceptions.VLLMValidationError is: a ValueError subclass."""


def _request(text: str) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=8)


class StandInChat:
    """Like `LLM.chat`: the whole call fails if any prompt is bad; records every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, requests: list[ChatRequest]) -> list[ChatResult]:
        self.calls.append(len(requests))
        for r in requests:
            if "BAD" in r.messages[-1]["content"]:
                raise VLLMValidationError("This model's maximum context length is 2048 tokens. However, you "
                                          "requested 9000 tokens\n(second line)")
        return [ChatResult(f"ok {r.messages[-1]['content']}", "stop", 3, 2, 0.01) for r in requests]


def test_one_bad_request_fails_only_its_own_row():
    chat = StandInChat()
    results = isolate_failures([_request("a"), _request("BAD"), _request("c")], chat)
    assert [r.text for r in results] == ["ok a", "", "ok c"]
    assert results[1].error == ("engine_error: VLLMValidationError: This model's maximum context length is 2048 "
                                "tokens. However, you requested 9000 tokens")
    assert chat.calls == [3, 1, 1, 1]  # the batch once, then one by one
    assert isolate_failures([_request("a"), _request("b")], chat) and chat.calls[-1] == 2  # good batches: one call
    assert isolate_failures([_request("BAD")], chat)[0].error.startswith("engine_error: VLLMValidationError")


def test_infrastructure_errors_are_not_rows():
    def dead(requests):
        raise RuntimeError("EngineDeadError: the engine core died")

    with pytest.raises(RuntimeError, match="engine core died"):
        isolate_failures([_request("a"), _request("b")], dead)


def test_a_prompt_longer_than_the_context_is_an_error_row_before_the_call():
    assert prompt_too_long(100, 2048) is None
    row = prompt_too_long(2048, 2048)
    assert row.error == ("engine_error: prompt_too_long: 2048 prompt tokens, the context is 2048 "
                         "(options.context_length)")


def test_close_uses_the_shutdown_vllm_has_and_gives_up_after_the_timeout():
    class New:  # vllm with LLM.shutdown()
        closed = False

        def shutdown(self):
            self.closed = True

    class Core:
        closed = False

        def shutdown(self):
            self.closed = True

    class Old:  # V1 engine core client only
        def __init__(self):
            self.llm_engine = type("E", (), {"engine_core": Core()})()

    new, old = New(), Old()
    close_vllm(new, 5)
    close_vllm(old, 5)
    assert new.closed and old.llm_engine.engine_core.closed

    class Hung:
        def shutdown(self):
            threading.Event().wait(30)

    started = time.monotonic()
    close_vllm(Hung(), 0.2)
    assert time.monotonic() - started < 5  # the pool kills the actor next; a hung engine cannot block it


def _vllm(model: str, **options) -> EngineSpec:
    return EngineSpec(engine="vllm", model=model, **options)


def test_generator_and_judge_on_one_gpu_fail_at_once_unless_they_share_it():
    cluster = {"CPU": 16.0, "GPU": 1.0}
    gen, judge = _vllm("gen-model"), _vllm("judge-model")
    replicas = {s.key: default_replicas(s, cluster, 2) for s in (gen, judge)}
    with pytest.raises(EngineUnavailableError) as caught:
        gpu_capacity([gen, judge], replicas, cluster)
    assert str(caught.value) == ("engine vllm: the recipe needs 2 GPUs (gen-model: 1 x 1, judge-model: 1 x 1) and "
                                 "the Ray cluster has 1 GPUs; lower options.replicas or tensor_parallel_size, "
                                 "or share a GPU with options.gpus_per_replica: 0.5")
    halves = [_vllm("gen-model", gpus_per_replica=0.5, gpu_memory_utilization=0.4),
              _vllm("judge-model", gpus_per_replica=0.5, gpu_memory_utilization=0.4)]
    replicas = {s.key: default_replicas(s, cluster, 2) for s in halves}
    assert list(replicas.values()) == [1, 1]
    gpu_capacity(halves, replicas, cluster)  # fits
    with pytest.raises(EngineUnavailableError, match="needs 1 GPUs .* has 0 GPUs; use engine llamacpp on CPU"):
        gpu_capacity([gen], {gen.key: 1}, {"CPU": 2.0})


def test_a_share_of_a_gpu_is_validated_in_the_recipe(tmp_path):
    with pytest.raises(Exception, match="gpus_per_replica: a share of a GPU needs tensor_parallel_size 1"):
        load_recipe(make_recipe(tmp_path, generation__engine="vllm", generation__options={
            "gpus_per_replica": 0.5, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.4}))
    with pytest.raises(Exception, match="gpu_memory_utilization: 0.85 of the GPU's memory is more than"):
        load_recipe(make_recipe(tmp_path, generation__engine="vllm", generation__options={"gpus_per_replica": 0.5}))
