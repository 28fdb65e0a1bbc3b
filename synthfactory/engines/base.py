"""One interface for every inference backend: chat requests in, results out, same order."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Protocol


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


@dataclass(frozen=True)
class EngineSpec:
    """Which backend and model an actor group runs; equal specs share the same actors."""

    engine: str
    model: str
    replicas: int | None = None  # None: llamacpp fills the cluster's CPUs, vllm its GPUs, openai 1
    threads: int = 1
    context_length: int = 2048
    logprobs: bool = False  # llama.cpp must keep every token's logits to return log-probabilities
    # vllm
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    gpus_per_replica: float = 1.0
    dtype: str = "auto"
    # openai: endpoints and how to talk to them; the key itself is read from `api_key_env` where it is used
    base_urls: tuple[str, ...] = ()
    api_key_env: str | None = None
    max_concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    response_format: str = "json_schema"

    @classmethod
    def from_options(cls, engine: str, model: str, options: Any, logprobs: bool = False) -> "EngineSpec":
        """From a recipe's `EngineOptions`."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"engine", "model", "logprobs"}
        values = {name: getattr(options, name) for name in fields}
        return cls(engine=engine, model=model, logprobs=logprobs, **{**values, "base_urls": tuple(values["base_urls"])})

    @property
    def key(self) -> str:
        """Equal keys share actors: everything that changes what is loaded or where requests go."""
        if self.engine == "openai":
            return f"openai:{self.model}:{','.join(self.base_urls)}:{self.response_format}"
        if self.engine == "vllm":
            return (f"vllm:{self.model}:{self.tensor_parallel_size}:{self.context_length}:{self.dtype}:"
                    f"{self.gpus_per_replica}:{self.gpu_memory_utilization}")
        return f"{self.engine}:{self.model}:{self.threads}:{self.context_length}:{self.logprobs}"


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


def isolate_failures(requests: list[ChatRequest], call: Callable[[list[ChatRequest]], list[ChatResult]],
                     request_errors: tuple[type[BaseException], ...] = (ValueError, TypeError)) -> list[ChatResult]:
    """`call` on the whole batch; if it raises one of `request_errors` (an engine that rejects the
    whole call for one bad request, as vLLM's `LLM.chat` does), each request is sent alone and only
    the ones that fail again become error rows, `engine_error: <type>: <first line>`. Any other
    exception is infrastructure and propagates."""
    if not requests:
        return []
    try:
        return call(requests)
    except request_errors as exc:
        if len(requests) == 1:
            return [_request_error(exc)]
    results = []
    for request in requests:
        try:
            results.extend(call([request]))
        except request_errors as exc:
            results.append(_request_error(exc))
    return results


def _request_error(exc: BaseException) -> ChatResult:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return error_result(f"engine_error: {type(exc).__name__}: {first}")


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
