"""One interface for every inference backend: chat requests in, results out, same order."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to run. `json_schema` constrains the output (judges use it)."""

    messages: tuple[dict[str, str], ...]
    max_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    json_schema: dict[str, Any] | None = None
    logprobs: int | None = None


@dataclass
class ChatResult:
    """What a backend returns for one request; `error` is set instead of raising per row."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    logprobs: list[dict[str, Any]] | None = None
    error: str | None = None
    node_id: str | None = None  # the Ray node that served it (set by the engine actor)


class EngineOptions(BaseModel):
    """What every back end's `options` may say; each back end extends it with its own fields.
    Strict: a key another back end takes is an error here, naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replicas: int | None = Field(None, ge=1, le=256, description="default: the back end's (fill the CPUs or GPUs)")


@dataclass(frozen=True)
class EngineSpec:
    """Which back end and model an actor group runs, with the back end's own options; equal specs
    share the same actors. `options` may be given as a dict (or left out): it is validated by the
    back end's `Options` model (pydantic ValidationError if wrong)."""

    engine: str
    model: str
    options: Any = None  # the back end's `Options`; a dict or None becomes one
    logprobs: bool = False  # llama.cpp must keep every token's logits to return log-probabilities

    def __post_init__(self) -> None:
        options_model = self.backend.Options
        if not isinstance(self.options, options_model):
            object.__setattr__(self, "options", options_model.model_validate(
                self.options.model_dump() if isinstance(self.options, BaseModel) else self.options or {}))

    @property
    def backend(self) -> type["EngineBackend"]:
        """The back end's class (its module is light: the heavy library loads in the actor)."""
        from synthfactory.registry import ENGINES

        return ENGINES.load(self.engine)

    @property
    def key(self) -> str:
        """Equal keys share actors: everything that changes what is loaded or where requests go."""
        return self.backend.key(self)


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
