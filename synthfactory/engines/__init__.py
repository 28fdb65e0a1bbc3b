"""Inference back ends: one per module, registered by name in `synthfactory.registry.ENGINES`."""

from __future__ import annotations

from synthfactory.engines.base import ChatRequest, ChatResult, Engine, EngineBackend, EngineOptions, EngineSpec
from synthfactory.errors import EngineUnavailableError


def create_engine(spec: EngineSpec) -> Engine:
    """Load the model named by `spec`; heavy imports happen here, inside the actor."""
    from synthfactory.registry import ENGINES

    if spec.engine not in ENGINES:
        raise EngineUnavailableError(f"engine: unknown engine {spec.engine!r}; choose one of {sorted(ENGINES)}")
    return ENGINES.load(spec.engine)(spec)


__all__ = ["ChatRequest", "ChatResult", "Engine", "EngineBackend", "EngineOptions", "EngineSpec", "create_engine"]
