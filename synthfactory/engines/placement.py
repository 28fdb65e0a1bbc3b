"""Where replicas run and how many: Ray resources per replica, default replica counts, GPU capacity."""

from __future__ import annotations

import os
from typing import Any

from synthfactory.engines.base import EngineSpec
from synthfactory.errors import EngineUnavailableError


VLLM_PYTHON = "SYNTHFACTORY_VLLM_PYTHON"  # the engine environment's Python (`make gpu-env`), for one-machine setups


def default_replicas(spec: EngineSpec, cluster: dict[str, float], groups: int) -> int:
    """llamacpp: fill the CPUs; vllm: as many replicas as the GPUs hold (`tensor_parallel_size`
    GPUs, or a `gpus_per_replica` share of one, each); openai: one actor (it is I/O-bound and
    serves many batches at once). `gpu_capacity` checks the total before any actor starts."""
    if spec.replicas:
        return spec.replicas
    if spec.engine == "openai":
        return 1
    if spec.engine == "vllm":
        return max(1, int(float(cluster.get("GPU", 0)) / gpus_of(spec) / groups + 1e-9))
    return max(1, int(cluster.get("CPU", 1.0) / spec.threads / groups))


def gpus_of(spec: EngineSpec) -> float:
    """GPUs one replica of `spec` asks Ray for."""
    return spec.tensor_parallel_size * spec.gpus_per_replica if spec.engine == "vllm" else 0.0


def gpu_capacity(specs: list[EngineSpec], replicas: dict[str, int], cluster: dict[str, float]) -> None:
    """Fail at once, in one line, when the recipe's vLLM replicas need more GPUs than the Ray
    cluster has (otherwise the replicas that do not fit wait for GPUs until the start times out)."""
    wanted = [(s, replicas[s.key]) for s in specs if s.engine == "vllm"]
    need = sum(gpus_of(s) * n for s, n in wanted)
    have = float(cluster.get("GPU", 0))
    if need <= have + 1e-9:
        return
    parts = ", ".join(f"{s.model}: {n} x {gpus_of(s):g}" for s, n in wanted)
    raise EngineUnavailableError(
        f"engine vllm: the recipe needs {need:g} GPUs ({parts}) and the Ray cluster has {have:g} GPUs; "
        + ("use engine llamacpp on CPU" if have == 0 else
           "lower options.replicas or tensor_parallel_size, or share a GPU with options.gpus_per_replica: 0.5"))


def actor_options(spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
    """Ray resources per replica: llama.cpp threads as CPUs, vLLM GPUs (a placement group for
    tensor parallelism; returned too, so the pool removes it at shutdown), and a thread pool for
    endpoint calls."""
    if spec.engine == "openai":
        return {"num_cpus": 0.1, "max_concurrency": 64}, None
    if spec.engine == "vllm":
        # vLLM cannot share the factory's environment (Prefect pins another fastapi): on a cluster
        # the GPU nodes' Python is the engine environment; on one machine this points Ray at it
        python = os.environ.get(VLLM_PYTHON)
        env = {"runtime_env": {"py_executable": python}} if python else {}
        if spec.tensor_parallel_size == 1:
            return {"num_cpus": 1, "num_gpus": spec.gpus_per_replica, **env}, None
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        # GPU only: vLLM's workers never use a bundle's CPU, and asking for one can leave GPUs idle
        group = placement_group([{"GPU": 1}] * spec.tensor_parallel_size, strategy="STRICT_PACK")
        # the actor itself takes no GPU: vLLM's Ray executor puts one worker per bundle
        return {"num_cpus": 0, "num_gpus": 0, **env, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_capture_child_tasks=True)}, group
    return {"num_cpus": round(spec.threads * cpu_share, 2)}, None
