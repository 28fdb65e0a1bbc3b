"""Run it as a service: a real Prefect server on a free 127.0.0.1 port, the work pool, the
deployments from deploy/prefect.yaml, a process worker, and `prefect deployment run`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from synthfactory import load_dataset_version
from synthfactory.store import DatasetStore
from tests.conftest import cli_command, free_port, make_recipe, prefect_call, wait_for

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture
def postgres():
    """A real PostgreSQL (Debian's package; `make test` installs it) on a free port; its SQLAlchemy URL."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not bins:
        pytest.fail("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
    bindir = bins[-1].parent
    root = Path(tempfile.mkdtemp(prefix="sf-pg-"))  # outside pytest's 0700 tmp: postgres runs as its own user
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    proc = subprocess.Popen([*as_postgres, str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(port),
                             "-k", str(root), "-c", "listen_addresses=127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                         capture_output=True).returncode == 0, 60, "PostgreSQL did not start")
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"],
                       check=True, capture_output=True)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def start_server(tmp_path: Path, auth_string: str | None = None, **settings: str):
    """`prefect server start` on a free port; returns (client env, process)."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_CLI_PROMPT": "false",
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PYTHONUNBUFFERED": "1", **settings}
    env.pop("RAY_ADDRESS", None)
    auth = tuple(auth_string.split(":", 1)) if auth_string else None
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"] = auth_string
    log = tmp_path / "server.log"
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", auth=auth, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 120, "the Prefect server did not start", log)
    except BaseException:
        os.killpg(proc.pid, 9)
        raise
    return env, proc


@pytest.fixture
def server(tmp_path, request):
    """A Prefect server (SQLite); with a parameter, that basic-auth string is required (server and clients)."""
    env, proc = start_server(tmp_path, getattr(request, "param", None))
    try:
        yield env
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """One Prefect server (SQLite) with the work pool and deploy/prefect.yaml's deployments, shared by
    the tests that only run deployments on it: each tells its own runs apart by their `store`."""
    env, proc = start_server(tmp_path_factory.mktemp("deployed"))
    try:
        _deploy(env)
        yield env
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def _prefect(env, *args, timeout=300):
    return subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _deploy(env, prefect_file: str = "deploy/prefect.yaml") -> None:
    created = _prefect(env, "work-pool", "create", "synthfactory", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stderr
    deployed = _prefect(env, "deploy", "--prefect-file", prefect_file, "--all")
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]


def _start_worker(env, log: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([PREFECT, "worker", "start", "--pool", "synthfactory"], env={**env, **extra}, cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop_worker(env, worker: subprocess.Popen) -> None:
    """Kill the worker and any flow-run process it started (each runs in its own session)."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    for run in _api(env, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING"]}}}}):
        if run.get("infrastructure_pid"):
            try:
                os.killpg(os.getpgid(int(run["infrastructure_pid"].rsplit(":", 1)[-1])), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def _api(env, path: str, body: dict | None = None):
    body = {"limit": 50, "offset": 0, **(body or {})}
    return prefect_call("POST", f"{env['PREFECT_API_URL']}{path}", json=body).json()


def _screenshot_and_text(url: str, png: Path) -> str:
    """Headless Chromium: a screenshot of the page and its rendered DOM (the Prefect UI is a JS app)."""
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chrome is None:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    flags = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000", "--virtual-time-budget=20000"]
    subprocess.run([*flags, f"--screenshot={png}", url], capture_output=True, timeout=120, check=True)
    return subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout


def _mechanics_recipe(tmp_path: Path) -> Path:
    """The quickstart deployment run on a recipe named like it but judged with threshold 0: these
    tests are about deployments, workers and the UI, not whether 2-4 rows of a 135M model pass
    the quickstart's gate (a run in which none passes publishes no version)."""
    folder = tmp_path / "recipe"
    folder.mkdir(exist_ok=True)
    suite = {"name": "mechanics", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "text"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}
    return make_recipe(folder, name="quickstart", suite=suite, grading__method="logprobs", grading__threshold=0.0,
                       quality__enabled=False)


def test_deploy_worker_and_deployment_run_publish_a_version_seen_in_the_ui(deployed, tmp_path, ray_cluster):
    env = deployed
    worker = _start_worker(env, tmp_path / "worker.log", RAY_ADDRESS=ray_cluster)  # its runs join the session's Ray
    try:
        store = tmp_path / "store"
        started = _prefect(env, "deployment", "run", "synthfactory/quickstart", "--param", f"store={store}",
                           "--param", f"recipe_path={_mechanics_recipe(tmp_path)}",
                           "--param", "batches=1", "--param", "batch_size=4", "--watch", "--watch-timeout", "280")
        assert started.returncode == 0, started.stdout[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
        assert "Completed" in started.stdout
    finally:
        _stop_worker(env, worker)
    versions = DatasetStore(store / "quickstart").versions()
    assert [v.version for v in versions] == [1]
    assert versions[0].metadata.totals.generated == 4
    assert load_dataset_version(store / "quickstart").num_rows == versions[0].metadata.totals.accepted
    factory = {"flows": {"name": {"any_": ["synthfactory"]}}}  # the completed run also triggered a probe run
    runs = [r for r in _api(env, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}},
                                                        **factory})
            if r["parameters"].get("store") == str(store)]  # the server is shared: this test's runs
    assert [r["name"] for r in runs] == ["quickstart-v1"] and runs[0]["state_type"] == "COMPLETED"
    nightly = _api(env, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}, **factory})
    assert nightly and all(r["auto_scheduled"] for r in nightly)  # the nightly cron schedule is live

    # what a user sees in the Prefect UI, in a real browser
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    run_page = _screenshot_and_text(f"{ui}/runs/flow-run/{runs[0]['id']}", tmp_path / "flow-run.png")
    assert (tmp_path / "flow-run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "flow-run.png").stat().st_size > 10_000  # a rendered page, not a blank one
    assert "quickstart-v1" in run_page and "Completed" in run_page
    [report] = _api(env, "/artifacts/filter", {"artifacts": {"key": {"any_": ["quickstart-report"]},
                                                             "flow_run_id": {"any_": [runs[0]["id"]]}}})
    artifact_page = _screenshot_and_text(f"{ui}/artifacts/artifact/{report['id']}", tmp_path / "report.png")
    assert "quickstart version 1" in artifact_page and "Validation per batch" in artifact_page


INTERVAL = 20


def test_interval_schedule_on_postgresql_makes_exactly_one_version_per_slot(postgres, tmp_path, ray_cluster):
    """Deploy-and-run against a server whose database is PostgreSQL; the schedule fires on its own."""
    env, proc = start_server(tmp_path, PREFECT_API_DATABASE_CONNECTION_URL=postgres,
                             PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2")
    worker = None
    try:
        store = tmp_path / "store"
        spec = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
        deployment = spec["deployments"][0]
        spec["deployments"] = [deployment]  # this test's schedule alone
        deployment.update(name="every-20s", schedules=[{"interval": INTERVAL}],
                          parameters={**deployment["parameters"], "store": str(store), "batches": 1, "batch_size": 2,
                                      "recipe_path": str(_mechanics_recipe(tmp_path))})
        (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(spec))
        _deploy(env, str(tmp_path / "prefect.yaml"))
        worker = _start_worker(env, tmp_path / "worker.log", PREFECT_WORKER_QUERY_SECONDS="2",
                               RAY_ADDRESS=ray_cluster)  # its flow runs join the session's Ray

        def completed():
            return _api(env, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})

        wait_for(lambda: len(completed()) >= 2, 300, "two scheduled runs did not complete", tmp_path / "worker.log")
        # pause the schedule (its future runs are deleted), let runs already started finish
        [deployment] = _api(env, "/deployments/filter")
        pause = f"{env['PREFECT_API_URL']}/deployments/{deployment['id']}/pause_deployment"
        prefect_call("POST", pause).raise_for_status()
        in_flight = {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}}}}
        wait_for(lambda: not _api(env, "/flow_runs/filter", in_flight), 300, "started runs did not finish",
                  tmp_path / "worker.log")
        runs = completed()
        assert not _api(env, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["FAILED", "CRASHED"]}}}})
    finally:
        if worker is not None:
            _stop_worker(env, worker)
        os.killpg(proc.pid, 9)
        proc.wait()
    assert all(r["auto_scheduled"] for r in runs)  # fired by the schedule, nobody triggered them
    slots = sorted(r["expected_start_time"] for r in runs)
    assert len(set(slots)) == len(runs)
    versions = DatasetStore(store / "quickstart").versions()
    # one version per completed slot, none twice, none missing
    assert [v.version for v in versions] == list(range(1, len(runs) + 1))
    assert sorted(v.metadata.prefect_flow_run_id for v in versions) == sorted(r["id"] for r in runs)
    assert sorted(r["name"] for r in runs) == [f"quickstart-v{v.version}" for v in versions]
    # and the server kept them in PostgreSQL
    psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    host, port = postgres.split("@")[1].split("/")[0].split(":")
    stored = subprocess.run([str(psql), "-h", host, "-p", port, "-U", "postgres", "-d", "prefect", "-tAc",
                             "SELECT name FROM flow_run WHERE state_type = 'COMPLETED' ORDER BY name"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert set(stored) >= {r["name"] for r in runs}


def test_worker_killed_mid_run_ends_crashed_and_a_retry_resumes(server, tmp_path):
    env = server
    _deploy(env)
    subprocess.run([sys.executable, "-m", "flows.monitoring", "--within", "45"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    store = tmp_path / "store"
    params = ["--param", f"store={store}", "--param", "batches=3", "--param", "batch_size=2",
              "--param", f"recipe_path={_mechanics_recipe(tmp_path)}"]
    worker = _start_worker(env, tmp_path / "worker.log", PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30")
    unscheduled = {"flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}}}
    try:
        started = _prefect(env, "deployment", "run", "synthfactory/quickstart", *params)
        assert started.returncode == 0, started.stderr
        # let one batch finish (its stages are cached in the dataset's staging folder), then kill
        # the worker and the flow-run process it started (its own session, with Ray under it),
        # as a machine failure would: nothing is left to report the run's end
        wait_for(lambda: any((store / "quickstart" / "_staging").glob("*-validate")), 240,
                  "no batch finished", tmp_path / "worker.log")
        [run] = _api(env, "/flow_runs/filter", unscheduled)
        assert run["state_type"] == "RUNNING" and run["infrastructure_pid"]
        run_group = os.getpgid(int(run["infrastructure_pid"].rsplit(":", 1)[-1]))
    finally:
        # the worker first: alive, it would see its flow-run process exit -9 and report Crashed itself
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    os.killpg(run_group, signal.SIGKILL)
    killed_at = time.monotonic()
    crashed = wait_for(lambda: [r for r in _api(env, "/flow_runs/filter") if r["state_type"] == "CRASHED"], 150,
                        "the dead run was not marked Crashed")
    assert crashed[0]["id"] == run["id"]
    assert crashed[0]["state"]["message"].startswith("No heartbeat for 45s")  # our automation, not the run itself
    print(f"Crashed {time.monotonic() - killed_at:.0f}s after the worker and its run died")
    assert not DatasetStore(store / "quickstart").exists()  # nothing half-published

    worker = _start_worker(env, tmp_path / "worker2.log")
    try:
        retried = _prefect(env, "deployment", "run", "synthfactory/quickstart", *params,
                           "--watch", "--watch-timeout", "280")
        assert retried.returncode == 0 and "Completed" in retried.stdout, (
            retried.stdout[-2000:] + (tmp_path / "worker2.log").read_text()[-3000:])
    finally:
        _stop_worker(env, worker)
    [version] = DatasetStore(store / "quickstart").versions()
    assert version.version == 1 and version.metadata.totals.generated == 6
    assert version.metadata.totals.batches_resumed >= 1  # finished batches came from the cache, not the model


SECRET = "admin:s3cret-Auth-9f2c"


@pytest.mark.parametrize("server", [SECRET], indirect=True)
def test_auth_on_rejects_anonymous_calls_and_an_authenticated_client_runs(server, tmp_path, ray_cluster):
    api = server["PREFECT_API_URL"]
    anonymous = prefect_call("POST", f"{api}/flow_runs/filter", json={"limit": 1, "offset": 0})
    assert anonymous.status_code == 401
    assert prefect_call("POST", f"{api}/flow_runs/filter", json={"limit": 1, "offset": 0},
                      auth=tuple(SECRET.split(":", 1))).status_code == 200

    recipe = make_recipe(tmp_path, batches__count=1, batches__size=2, grading__method="logprobs")
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store"), "--json"),
                          env={**server, "RAY_ADDRESS": ray_cluster}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["version"] == 1
    assert SECRET.split(":", 1)[1] not in done.stdout + done.stderr  # never logged


def _probe_deployment() -> dict:
    spec = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    [probe] = [d for d in spec["deployments"] if d["name"] == "probe"]
    return probe


def test_the_probe_deployment_is_triggered_by_completed_factory_runs_with_their_dataset():
    """Checked from the file: the trigger names the factory flow and its Completed event, and every
    parameter it renders is one the probe flow takes (a typo would fail the automation on the server)."""
    import inspect

    from flows.factory import factory_flow
    from flows.probe import probe_flow

    probe = _probe_deployment()
    assert probe["entrypoint"] == "flows/probe.py:probe_flow" and "schedules" not in probe
    assert probe["concurrency_limit"] == 1  # one fine-tune at a time
    [trigger] = probe["triggers"]
    assert trigger["enabled"] and trigger["expect"] == ["prefect.flow-run.Completed"]
    assert trigger["match_related"] == {"prefect.resource.role": "flow", "prefect.resource.name": factory_flow.name}
    taken = set(inspect.signature(probe_flow.fn).parameters)
    assert set(trigger["parameters"]) | set(probe["parameters"]) <= taken
    factory_takes = set(inspect.signature(factory_flow.fn).parameters)
    for value in trigger["parameters"].values():  # flow_run.parameters.X names a factory parameter
        if "flow_run.parameters." in value:
            assert value.split("flow_run.parameters.")[1].split()[0] in factory_takes


def test_a_completed_factory_run_starts_a_probe_run_and_a_failed_one_does_not(deployed, tmp_path):
    """On a real server, with the deployments from deploy/prefect.yaml: factory runs of the quickstart
    deployment are moved to Failed and Completed through the API (no worker: the trigger is the
    subject, not the run), and the probe deployment gets one flow run, for the completed run only,
    with that run's store, recipe and id."""
    env = deployed
    deployments = {d["name"]: d["id"] for d in _api(env, "/deployments/filter")}
    api = env["PREFECT_API_URL"]
    store, recipe = str(tmp_path / "store"), str(tmp_path / "recipe.yaml")

    def factory_run_ending(state: str) -> str:
        created = prefect_call("POST", f"{api}/deployments/{deployments['quickstart']}/create_flow_run",
                             json={"parameters": {"store": store, "recipe_path": recipe}})
        assert created.status_code == 201, created.text
        run = created.json()
        for step in ("RUNNING", state):
            prefect_call("POST", f"{api}/flow_runs/{run['id']}/set_state",
                       json={"state": {"type": step}, "force": True}).raise_for_status()
        return run["id"]

    failed = factory_run_ending("FAILED")
    completed = factory_run_ending("COMPLETED")

    def probe_runs():  # this test's: the server is shared, and other factory runs completed on it
        return [r for r in _api(env, "/flow_runs/filter", {"deployments": {"id": {"any_": [deployments["probe"]]}}})
                if r["parameters"].get("store") == store]

    [probe] = wait_for(probe_runs, 90, "no probe run was created for the completed factory run")
    assert probe["parameters"] == {**_probe_deployment()["parameters"], "store": store, "recipe_path": recipe,
                                   "flow_run_id": completed}
    time.sleep(3)  # the failed run's event came first: had it matched, its probe run would exist by now
    assert [r["parameters"]["flow_run_id"] for r in probe_runs()] == [completed] != [failed]


def test_the_probe_flow_probes_the_version_its_factory_run_published(prefect_api_url, tmp_path):
    """What the triggered run does: find the version the completed factory run published (by the run
    id in its commit metadata, not merely the newest) and probe it (a 1-step LoRA fine-tune, the real
    bundled model), leaving the record beside the dataset; a run that published nothing probes nothing."""
    from datetime import datetime, timezone

    from flows.probe import probe_flow
    from synthfactory.model.lineage import ROW_SCHEMA, row_id_for
    from synthfactory.model.metadata import VersionMetadata
    from synthfactory.probe import read_probes
    from synthfactory.recipe import load_recipe
    from tests.conftest import TOPICS

    recipe = make_recipe(tmp_path)
    dataset = DatasetStore.for_run(tmp_path / "store", load_recipe(recipe).recipe)
    for version, run in ((1, "run-one"), (2, "run-two")):
        rows = [{"id": row_id_for(f"Explain {t}.", f"{t} is explained here, version {version}."), "seed_id": f"s{i}",
                 "source": "synthetic", "generation_depth": 1, "prompt": f"Explain {t} in two sentences.",
                 "text": f"{t.capitalize()} is explained here, version {version}.", "score": 0.9, "run_id": run,
                 "batch_id": "b1", "version": version, "batch_index": 0, "created_at": datetime.now(timezone.utc)}
                for i, t in enumerate(TOPICS[:4])]
        dataset.publish(rows, VersionMetadata(version=version, run_id=run, dataset="tiny", method="text",
                                              generator_model="smollm2-135m-instruct", prefect_flow_run_id=run,
                                              recipe=yaml.safe_load(recipe.read_text())), ROW_SCHEMA)

    done = probe_flow(store=str(tmp_path / "store"), recipe_path=str(recipe), flow_run_id="run-one", steps=1)
    assert done["version"] == 1 and done["probe"]["steps"] == 1  # version 1, though version 2 is newer
    assert [r.version for r in read_probes(dataset, 1)] == [1] and read_probes(dataset, 2) == []
    nothing = probe_flow(store=str(tmp_path / "store"), recipe_path=str(recipe), flow_run_id="no-such-run", steps=1)
    assert nothing == {"uri": dataset.uri, "version": None, "probe": None}
