"""Shared fixtures: one real Prefect test server and one real local Ray cluster per session."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Every CLI run in a test starts Prefect's temporary server on a fresh PREFECT_HOME (migrations
# included); on 2 busy cores that took over Prefect's default 20 s in CI. The harness waits 120 s too.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Ray 2.60 turns token auth on for every new local cluster (ray.init with no address), but a driver
# joining through an explicit address (a CLI run with RAY_ADDRESS) presents the token only when
# RAY_AUTH_MODE=token is in its environment (ray/_private/worker.py). Set from the start, not only
# once ray_cluster's ray.init has set it in this process; the token itself: pytest_configure.
os.environ.setdefault("RAY_AUTH_MODE", "token")

import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOPICS = [
    "why the sky is blue", "how a binary search works", "the water cycle", "compound interest",
    "how bees communicate", "why bread rises", "recursion in programming", "how tides work",
    "what DNA does", "how solar panels work", "plate tectonics", "how vaccines work",
]


@pytest.fixture(scope="session")
def prefect_api_url():
    """A real Prefect server (the official test harness) for the whole session."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster for the whole session, started by the first test that asks for it:
    a start and shutdown cost ~5 s on 2 cores, once per module before. A run in this process joins
    it (and leaves it up); a CLI run joins it through RAY_ADDRESS; the actors a run starts end with
    the run's pool or its process."""
    import ray

    if not ray.is_initialized():  # "local": never a cluster some `ray start` recorded in /tmp/ray
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def make_recipe(tmp_path: Path, *, name: str = "tiny", topics: list[str] | None = None,
                seeds_text: bytes | None = None, suite: dict | None = None, **overrides) -> Path:
    """Write a small recipe (short generations, small batches) plus its seeds and suite under tmp_path."""
    seeds = tmp_path / "seeds.txt"
    seeds.write_bytes(seeds_text if seeds_text is not None else ("\n".join(topics or TOPICS) + "\n").encode())
    suite_path = tmp_path / "suite.json"
    if suite is None:
        suite = json.loads((ROOT / "expectations" / "quickstart.json").read_text())
        # tiny generations: gate on structure, not on how well a 135M model writes
        suite["expectations"] = [e for e in suite["expectations"] if e["type"] != "expect_column_mean_to_be_between"]
    suite_path.write_text(json.dumps(suite))
    recipe = {
        "name": name,
        "seeds": {"path": "seeds.txt", "field": "topic", "max_chars": 200},
        "generation": {
            "model": "smollm2-135m-instruct",
            "prompt_template": "Explain {{ topic }} in two sentences.",
            "sampling": {"temperature": 0.7, "max_tokens": 40, "seed": 7},
        },
        "grading": {
            "rubric": [{"name": "accuracy", "description": "Facts are correct."},
                       {"name": "clarity", "description": "Easy to follow."}],
            "threshold": 0.0, "max_tokens": 32,
        },
        "validation": {"suite": "suite.json"},
        "batches": {"size": 4, "count": 2},
    }
    return write_recipe(tmp_path, name, recipe, overrides)


def write_recipe(folder: Path, name: str, recipe: dict, overrides: dict) -> Path:
    """`recipe` with `section__key=value` overrides applied, written as `folder/name.yaml`."""
    for dotted, value in overrides.items():
        node = recipe
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def cli_env(prefect_api_url: str, ray_address: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a `synthfactory` subprocess: the session's Prefect server and Ray cluster."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "PYTHONUNBUFFERED": "1", **extra}
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    return env


def cli_command(*args: str) -> list[str]:
    exe = shutil.which("synthfactory", path=str(Path(sys.executable).parent))
    return [exe, *args] if exe else [sys.executable, "-m", "synthfactory.cli", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_call(method: str, url: str, **kwargs):
    """One Prefect REST call, retried as Prefect's own client retries it: the server answers 503 (and
    429/502) for errors it tells clients to retry, such as SQLite being busy under load. Up to 8 tries,
    backing off from 0.5 s; the last answer is returned whatever it is."""
    import httpx

    for attempt in range(8):
        try:
            response = httpx.request(method, url, timeout=30, **kwargs)
        except httpx.TransportError:
            if attempt == 7:
                raise
            time.sleep(0.5 * 2 ** min(attempt, 4))
            continue
        if response.status_code not in (429, 502, 503) or attempt == 7:
            return response
        time.sleep(0.5 * 2 ** min(attempt, 4))
    return response


def wait_for(check, seconds: float, what: str, log: Path | None = None):
    """Poll `check` until it returns something truthy (returned); fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what} within {seconds:g}s" + (f": {log.read_text()[-3000:]}" if log and log.exists() else ""))


def sigkill_after_first_batch(command: list[str], env: dict[str, str], staging: Path, timeout: float = 300):
    """Start `synthfactory run` in its own session, SIGKILL it (and its children) as soon as one
    batch has finished every stage, and return (ids of the batches finished by then, when)."""
    import signal
    import subprocess
    from datetime import datetime, timezone

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + timeout
    finished: set[str] = set()
    while time.monotonic() < deadline and first.poll() is None and not finished:
        finished = {p.name.rsplit("-", 1)[0] for p in staging.glob("*-validate")} if staging.is_dir() else set()
        time.sleep(0.05)
    assert finished, "no batch finished before the deadline"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    return {p.name.rsplit("-", 1)[0] for p in staging.glob("*-validate")}, datetime.now(timezone.utc)


def start_moto(**env: str):
    """moto's S3 server (a real S3-compatible server) in a process of its own on a free port of
    127.0.0.1; returns (process, endpoint). Not a thread in the test process: deltalake holds the GIL
    while it waits for some answers, so an in-process server could not answer them."""
    import subprocess
    import urllib.request

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto's server did not start (exit {server.poll()})")
            time.sleep(0.1)


# -- the edit loop: `make test-fast` -----------------------------------------------------------
# tests/durations.json holds each test's seconds (setup + call + teardown) measured on this kind of
# machine (`make durations` records a full run; `--record-durations` any run). `--fast` keeps the
# tests that took at most FAST_TEST_S there, plus tests not in the file yet whose module is (a new
# test in a fast module runs until it is measured); a module with no test in the file is left out
# (nothing known of its cost: the end-to-end modules).
DURATIONS = ROOT / "tests" / "durations.json"
FAST_TEST_S = 3.0


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true",
                     help=f"only tests that took at most {FAST_TEST_S:g}s in tests/durations.json (the edit loop)")
    parser.addoption("--record-durations", metavar="PATH", default=None,
                     help="write each test's seconds (setup + call + teardown) to PATH as JSON")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # once, in the controller (or the only process), before any worker
        _ensure_ray_token()


def _ensure_ray_token() -> None:
    """Ray's cluster token (~/.ray/auth_token), created once if missing. Ray's first local ray.init
    creates it, but not atomically: two pytest-xdist workers (or CLI runs) starting their first
    cluster on a fresh HOME at once could read a half-written token."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return
    path = Path.home() / ".ray" / "auth_token"
    if path.is_file() and path.stat().st_size:
        return
    from ray._private.authentication.authentication_token_generator import generate_new_authentication_token
    from ray._raylet import AuthenticationTokenLoader

    if AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):  # RAY_AUTH_TOKEN(_PATH)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".auth_token.{os.getpid()}")
    temporary.write_text(generate_new_authentication_token())
    try:
        os.link(temporary, path)  # all or nothing, and never over a token another process made
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    AuthenticationTokenLoader.instance().reset_cache()  # this process reads the file from now on


# Modules that take longest, handed out first: with `--dist loadscope --no-loadscope-reorder` a
# worker takes whole modules in collection order, so a long module started last cannot leave
# the other worker idle at the end.
LONG_MODULES_FIRST = (
    "test_deploy.py", "test_vllm.py", "test_improve.py", "test_object_store.py", "test_target.py", "test_scale.py",
    "test_calibration.py", "test_methods_e2e.py", "test_verified_recipes.py", "test_factory.py",
    "test_probe.py", "test_collapse.py", "test_gpu_path.py", "test_sandbox.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONG_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order
    if not config.getoption("--fast"):
        return
    recorded = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    modules = {nodeid.split("::")[0] for nodeid in recorded}

    def fast(item) -> bool:
        seconds = recorded.get(item.nodeid)
        return seconds <= FAST_TEST_S if seconds is not None else item.nodeid.split("::")[0] in modules

    keep = [item for item in items if fast(item)]
    dropped = [item for item in items if not fast(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: its reports reach the controller
        return
    path = session.config.getoption("--record-durations")
    if path and _seconds:
        Path(path).write_text(json.dumps({k: round(v, 2) for k, v in sorted(_seconds.items())}, indent=0) + "\n")
