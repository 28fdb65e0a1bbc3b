"""vLLM on GPUs: one `vllm.LLM` per Ray actor, in the engine environment (`make gpu-env`).

Each replica holds `tensor_parallel_size` GPUs: one GPU is the actor's own (`num_gpus=1`), and
for tensor parallelism the pool places the actor in a Ray placement group of that many GPU
bundles, which vLLM's Ray executor then uses for its workers. The chat template of the model is
applied by `LLM.chat`; sampling maps to `SamplingParams` (seed, temperature, top_p, max_tokens,
logprobs, and structured JSON output for the judge). Token counts come from the outputs.

`vllm` and `torch.cuda` are imported here only, inside the actor, so the CPU path never needs
them. The request and response mapping (`sampling_kwargs`, `result_from_output`) is plain code
shared with every engine's tests.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pydantic import Field, model_validator

from synthfactory.engines.base import (ChatRequest, ChatResult, EngineBackend, EngineOptions, EngineSpec,
                                       error_result, isolate_failures)
from synthfactory.errors import EngineUnavailableError

log = logging.getLogger(__name__)

VLLM_PYTHON = "SYNTHFACTORY_VLLM_PYTHON"  # the engine environment's Python (`make gpu-env`), for one-machine setups


class VLLMOptions(EngineOptions):
    """Replicas on GPUs: `tensor_parallel_size` GPUs each, or a `gpus_per_replica` share of one.
    Without `replicas`, as many as the cluster's GPUs hold."""

    context_length: int = Field(2048, ge=256, le=131072)
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs per replica (a Ray placement group)")
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, description="share of each GPU's memory")
    gpus_per_replica: float = Field(1.0, gt=0.0, le=1.0, description=(
        "the share of one GPU a replica asks Ray for; 0.5 lets a generator and a judge share a GPU "
        "(split gpu_memory_utilization to match, e.g. 0.4 each); needs tensor_parallel_size 1 below 1"))
    dtype: str = Field("auto", description="model dtype")

    @model_validator(mode="after")
    def _fraction_of_one_gpu(self) -> "VLLMOptions":
        if self.gpus_per_replica < 1.0 and self.tensor_parallel_size > 1:
            raise ValueError("gpus_per_replica: a share of a GPU needs tensor_parallel_size 1")
        if self.gpus_per_replica < 1.0 and self.gpu_memory_utilization > self.gpus_per_replica:
            raise ValueError(f"gpu_memory_utilization: {self.gpu_memory_utilization} of the GPU's memory is more "
                             f"than this replica's share of it (gpus_per_replica {self.gpus_per_replica})")
        return self


def sampling_kwargs(request: ChatRequest) -> dict[str, Any]:
    """`SamplingParams` keyword arguments for one request (structured output added separately)."""
    kwargs: dict[str, Any] = {"temperature": request.temperature, "top_p": request.top_p,
                              "max_tokens": request.max_tokens, "seed": request.seed}
    if request.logprobs:
        kwargs["logprobs"] = request.logprobs
    return kwargs


def result_from_output(output: Any, latency_s: float, top: int | None) -> ChatResult:
    """One `vllm.RequestOutput` to a ChatResult; logprobs in the OpenAI-like form the judges read."""
    completion = output.outputs[0]
    logprobs = None
    if top and completion.logprobs:
        logprobs = []
        for token_id, entry in zip(completion.token_ids, completion.logprobs):
            chosen = entry.get(token_id)
            ranked = sorted(entry.values(), key=lambda lp: lp.rank if lp.rank is not None else 1 << 30)[:top]
            logprobs.append({
                "token": chosen.decoded_token if chosen is not None else "",
                "logprob": float(chosen.logprob) if chosen is not None else float("-inf"),
                "top": [{"token": lp.decoded_token, "logprob": float(lp.logprob)} for lp in ranked],
            })
    return ChatResult(
        text=completion.text,
        finish_reason=completion.finish_reason or "stop",
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=len(completion.token_ids),
        latency_s=latency_s,
        logprobs=logprobs,
    )


def _structured(schema: dict[str, Any]) -> dict[str, Any]:
    """Structured-output keyword for `SamplingParams`, for the vllm installed (the API was renamed)."""
    try:  # vllm >= 0.10.2
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=schema)}
    except ImportError:  # older vllm
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}


class VLLMEngine(EngineBackend):
    """One vLLM engine on this actor's GPU(s); loaded once, used for every batch."""

    Options = VLLMOptions
    close_before_kill = True  # its engine core process holds GPU memory and can outlive a killed actor

    @classmethod
    def key(cls, spec: EngineSpec) -> str:
        o = spec.options
        return (f"vllm:{spec.model}:{o.tensor_parallel_size}:{o.context_length}:{o.dtype}:"
                f"{o.gpus_per_replica}:{o.gpu_memory_utilization}")

    @classmethod
    def gpus(cls, spec: EngineSpec) -> float:
        return spec.options.tensor_parallel_size * spec.options.gpus_per_replica

    @classmethod
    def default_replicas(cls, spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
        """As many replicas as the GPUs hold (`gpu_capacity` checks the total before any actor starts)."""
        return max(1, int(float(cluster.get("GPU", 0)) / cls.gpus(spec) / groups + 1e-9))

    @classmethod
    def actor_options(cls, spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
        """Its GPUs; for tensor parallelism a placement group (returned, so the pool removes it at shutdown)."""
        # vLLM cannot share the factory's environment (Prefect pins another fastapi): on a cluster
        # the GPU nodes' Python is the engine environment; on one machine this points Ray at it
        python = os.environ.get(VLLM_PYTHON)
        env = {"runtime_env": {"py_executable": python}} if python else {}
        if spec.options.tensor_parallel_size == 1:
            return {"num_cpus": 1, "num_gpus": spec.options.gpus_per_replica, **env}, None
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        # GPU only: vLLM's workers never use a bundle's CPU, and asking for one can leave GPUs idle
        group = placement_group([{"GPU": 1}] * spec.options.tensor_parallel_size, strategy="STRICT_PACK")
        # the actor itself takes no GPU: vLLM's Ray executor puts one worker per bundle
        return {"num_cpus": 0, "num_gpus": 0, **env, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_capture_child_tasks=True)}, group

    def __init__(self, spec: EngineSpec) -> None:
        try:
            import torch
            import vllm
        except ImportError:
            raise EngineUnavailableError(
                "engine: vllm is not installed in the engine actors' Python: run `make gpu-env` and set "
                "SYNTHFACTORY_VLLM_PYTHON=.venv-gpu/bin/python (one machine), or see deploy/ray/cluster.yaml") from None
        if not torch.cuda.is_available():
            raise EngineUnavailableError("engine: vllm needs a CUDA GPU on the Ray worker; use engine llamacpp on CPU")
        self.model_name = spec.model
        options = spec.options
        started = time.perf_counter()
        self._llm = vllm.LLM(
            model=spec.model,
            tensor_parallel_size=options.tensor_parallel_size,
            distributed_executor_backend="ray" if options.tensor_parallel_size > 1 else None,
            gpu_memory_utilization=options.gpu_memory_utilization,
            max_model_len=options.context_length,
            dtype=options.dtype,
            seed=0,
        )
        self._SamplingParams = vllm.SamplingParams
        self._tokenizer = self._llm.get_tokenizer()
        self._max_model_len = options.context_length
        self.load_seconds = time.perf_counter() - started
        log.info("vllm loaded %s in %.1fs", spec.model, self.load_seconds)

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """The whole batch in one `LLM.chat` call (vLLM schedules it with continuous batching).
        A prompt longer than the context becomes an error row before the call; if vLLM still
        rejects the call for one request, the requests go one by one and only the bad ones fail."""
        results: list[ChatResult | None] = [self._too_long(r) for r in requests]
        todo = [i for i, r in enumerate(results) if r is None]
        for i, result in zip(todo, isolate_failures([requests[i] for i in todo], self._generate)):
            results[i] = result
        return [r for r in results if r is not None]

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        params = []
        for request in requests:
            extra = _structured(request.json_schema) if request.json_schema is not None else {}
            params.append(self._SamplingParams(**sampling_kwargs(request), **extra))
        started = time.perf_counter()
        outputs = self._llm.chat([[dict(m) for m in r.messages] for r in requests], sampling_params=params,
                                 use_tqdm=False)
        latency = (time.perf_counter() - started) / max(1, len(requests))  # engine time shared by the batch
        return [result_from_output(out, latency, r.logprobs) for out, r in zip(outputs, requests, strict=True)]

    def _too_long(self, request: ChatRequest) -> ChatResult | None:
        tokens = len(self._tokenizer.apply_chat_template([dict(m) for m in request.messages], tokenize=True,
                                                         add_generation_prompt=True))
        return prompt_too_long(tokens, self._max_model_len)

    def close(self, timeout_s: float = 30.0) -> None:
        """Shut vLLM's engine core down (its own process holds the GPU memory), within `timeout_s`."""
        close_vllm(self._llm, timeout_s)


def prompt_too_long(tokens: int, context: int) -> ChatResult | None:
    """An error row for a prompt that leaves no room to generate in the context, else None."""
    if tokens < context:
        return None
    return error_result(f"engine_error: prompt_too_long: {tokens} prompt tokens, the context is {context} "
                        "(options.context_length)")


def close_vllm(llm: Any, timeout_s: float) -> None:
    """`LLM.shutdown()` where vLLM has it, else the V1 engine core client's `shutdown()`; in a
    thread, so a hung engine cannot hold the actor past `timeout_s` (the pool kills it then)."""
    import threading

    def stop() -> None:
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and callable(getattr(core, "shutdown", None)):
            core.shutdown()

    worker = threading.Thread(target=stop, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        log.warning("vllm engine did not shut down within %.0fs; the actor is killed anyway", timeout_s)
