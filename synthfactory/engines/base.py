"""One interface for every inference backend: chat requests in, results out, same order."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

from synthfactory.model.chat import ChatRequest, ChatResult, EngineOptions, EngineSpec

__all__ = ["ChatRequest", "ChatResult", "EngineOptions", "EngineSpec", "EngineBackend", "Engine"]


class EngineBackend:
    """What a back end declares beside serving requests: its options model and how the pool
    places its replicas. Engines subclass it; the pool, placement and CLI ask it instead of
    branching on engine names."""

    Options: ClassVar[type[EngineOptions]] = EngineOptions
    close_before_kill: ClassVar[bool] = False  # its memory outlives a killed actor (vLLM's engine core)
    one_request_at_a_time: ClassVar[bool] = False  # True: the pool hands out its requests singly (see `Engine`)
    crash_hint: ClassVar[str] = ""  # what to try when a replica crashes, for the one-line error

    @classmethod
    def key(cls, spec: EngineSpec) -> str:
        return f"{spec.engine}:{spec.model}:{spec.options.model_dump_json()}:{spec.logprobs}"

    @classmethod
    def placed(cls, spec: EngineSpec, cluster: dict[str, float]) -> EngineSpec:
        """`spec` with whatever it leaves to the cluster settled (vLLM's `device: auto`)."""
        return spec

    @classmethod
    def batching(cls, spec: EngineSpec) -> int:
        """Requests one replica batches at once (0: it answers one at a time, or the run need not
        feed it more than a few batches): the run keeps enough batches in flight to fill it."""
        return 0

    @classmethod
    def cpu_threads(cls, spec: EngineSpec) -> int:
        """CPUs one replica keeps busy computing (0: not CPU-bound); the pool scales these to fit."""
        return 0

    @classmethod
    def gpus(cls, spec: EngineSpec) -> float:
        """GPUs one replica asks Ray for."""
        return 0.0

    @classmethod
    def default_replicas(cls, spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
        """Replicas when the recipe gives none; `groups` distinct specs share the cluster."""
        return 1

    @classmethod
    def actor_options(cls, spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
        """Ray actor options for one replica, and a placement group to remove at shutdown (or None)."""
        return {"num_cpus": 1}, None

    @classmethod
    def check_model(cls, model: str) -> None:
        """Raise a one-line UserError if `model` cannot be found here, before any actor starts."""


class Engine(Protocol):
    """A loaded model. Created once per actor; `chat` is called for every batch; `close` frees
    what the model holds (GPU memory, child processes, connections) before the actor is killed.
    An engine that runs a call's requests one after another sets `one_request_at_a_time = True`:
    the pool then hands its requests to whichever replica is free, one by one; any other engine
    (it batches, or serves many requests at once) gets every call whole."""

    model_name: str

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]: ...

    def close(self) -> None: ...


def error_result(reason: str) -> ChatResult:
    """A request the engine could not run: a row with its reason, not an exception for the batch."""
    return ChatResult("", "error", 0, 0, 0.0, error=reason)


def openai_logprobs(raw: dict | None) -> list[dict] | None:
    """OpenAI-style `logprobs.content` to our form: [{token, logprob, top: [{token, logprob}]}]."""
    if not raw or not raw.get("content"):
        return None
    return [
        {"token": item["token"], "logprob": float(item["logprob"]),
         "top": [{"token": t["token"], "logprob": float(t["logprob"])} for t in item.get("top_logprobs") or []]}
        for item in raw["content"]
    ]


def start_check_requests(logprobs: bool) -> list[ChatRequest]:
    """What every replica must answer before it gets work: one token, and one token with
    log-probabilities when its judge reads them."""
    one = ChatRequest(messages=({"role": "user", "content": "Reply with one word: are you ready?"},),
                      max_tokens=1, temperature=0.0, top_p=1.0, seed=0)
    return [one, dataclasses.replace(one, logprobs=5)] if logprobs else [one]


def start_check(engine: Engine, spec: EngineSpec) -> None:
    """Prove an engine can generate before any batch is planned on it: a crash or a broken
    endpoint shows here, in seconds, instead of after minutes of retried batches."""
    from synthfactory.errors import EngineFailure

    results = engine.chat(start_check_requests(spec.logprobs))
    for result in results:
        if result.error:
            raise EngineFailure(f"engine {spec.engine} (model {spec.model}) failed its start check: {result.error}")
    if spec.logprobs and not results[-1].logprobs:
        raise EngineFailure(f"engine {spec.engine} (model {spec.model}) returned no log-probabilities; "
                            "use grading.method: json with this engine")
