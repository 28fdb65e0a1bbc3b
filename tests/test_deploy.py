"""Run it as a service: a real Prefect server on a free 127.0.0.1 port, the work pool, the
deployments from deploy/prefect.yaml, a process worker, and `prefect deployment run`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from synthfactory import load_dataset_version
from tests.conftest import cli_command, make_recipe
from synthfactory.store import DatasetStore

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path, request):
    """A Prefect server; with a parameter, that basic-auth string is required (server and clients)."""
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_CLI_PROMPT": "false",
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    auth_string = getattr(request, "param", None)
    auth = tuple(auth_string.split(":", 1)) if auth_string else None
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"] = auth_string
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", auth=auth, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail(f"server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield env
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_deploy_worker_and_deployment_run_publish_a_version(server, tmp_path):
    env = server
    run = lambda *args: subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True,  # noqa: E731
                                       timeout=300)
    created = run("work-pool", "create", "synthfactory", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stderr
    deployed = run("deploy", "--prefect-file", "deploy/prefect.yaml", "--all")
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "synthfactory"], env=env, cwd=ROOT,
                              stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        store = tmp_path / "store"
        started = run("deployment", "run", "synthfactory/quickstart", "--param", f"store={store}",
                      "--param", "batches=1", "--param", "batch_size=4", "--watch", "--watch-timeout", "280")
        assert started.returncode == 0, started.stdout[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
        assert "Completed" in started.stdout
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()
    versions = DatasetStore(store / "quickstart").versions()
    assert [v.version for v in versions] == [1]
    assert versions[0].metadata["generated"] == 4
    assert load_dataset_version(store / "quickstart").num_rows == versions[0].metadata["accepted"]
    runs = httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/filter", json={"limit": 5, "offset": 0}).json()
    assert [r["name"] for r in runs] == ["quickstart-v1"] and runs[0]["state_type"] == "COMPLETED"


SECRET = "admin:s3cret-Auth-9f2c"


@pytest.mark.parametrize("server", [SECRET], indirect=True)
def test_auth_on_rejects_anonymous_calls_and_an_authenticated_client_runs(server, tmp_path):
    api = server["PREFECT_API_URL"]
    anonymous = httpx.post(f"{api}/flow_runs/filter", json={"limit": 1, "offset": 0})
    assert anonymous.status_code == 401
    assert httpx.post(f"{api}/flow_runs/filter", json={"limit": 1, "offset": 0},
                      auth=tuple(SECRET.split(":", 1))).status_code == 200

    recipe = make_recipe(tmp_path, batches__count=1, batches__size=2, grading__method="logprobs")
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store"), "--json"),
                          env=server, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["version"] == 1
    assert SECRET.split(":", 1)[1] not in done.stdout + done.stderr  # never logged
