"""One interface for every inference backend: chat requests in, results out, same order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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


@dataclass(frozen=True)
class EngineSpec:
    """Which backend and model an actor group runs; equal specs share the same actors."""

    engine: str
    model: str
    replicas: int | None = None  # None: as many as the cluster's CPUs allow
    threads: int = 1
    context_length: int = 2048
    logprobs: bool = False  # llama.cpp must keep every token's logits to return log-probabilities

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.model}:{self.threads}:{self.context_length}:{self.logprobs}"


class Engine(Protocol):
    """A loaded model. Created once per actor; `chat` is called for every batch."""

    model_name: str

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]: ...
