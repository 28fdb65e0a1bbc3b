"""What engines are asked and answer: chat requests, their results, and which back end and model
serve them (`EngineSpec`). Data only: the back ends themselves are `synthfactory.engines`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    def backend(self) -> Any:
        """The back end's class (its module is light: the heavy library loads in the actor)."""
        from synthfactory.registry import ENGINES

        return ENGINES.load(self.engine)

    @property
    def key(self) -> str:
        """Equal keys share actors: everything that changes what is loaded or where requests go."""
        return self.backend.key(self)
