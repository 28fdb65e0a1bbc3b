"""Engine registry: one backend per module, chosen by name, imported lazily."""

from __future__ import annotations

from synthfactory.engines.base import ChatRequest, ChatResult, Engine, EngineSpec
from synthfactory.errors import EngineUnavailableError

BACKENDS = {
    "llamacpp": "synthfactory.engines.llamacpp:LlamaCppEngine",
    "vllm": "synthfactory.engines.vllm:VLLMEngine",  # the engine environment: deploy/gpu/requirements.txt
    "openai": "synthfactory.engines.openai:OpenAIEngine",
}


def create_engine(spec: EngineSpec) -> Engine:
    """Load the model named by `spec`; heavy imports happen here, inside the actor."""
    import importlib

    if spec.engine not in BACKENDS:
        raise EngineUnavailableError(f"engine: unknown engine {spec.engine!r}; choose one of {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[spec.engine].split(":")
    return getattr(importlib.import_module(module_name), class_name)(spec)


__all__ = ["ChatRequest", "ChatResult", "Engine", "EngineSpec", "create_engine"]
