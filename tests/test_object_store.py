"""Datasets on S3, end to end against a real S3 server on 127.0.0.1 (moto's server mode): runs
publish to the bucket, a run SIGKILLed on one "machine" resumes on another (another working
directory, another HOME, no local state), concurrent runs give v1 and v2, dedup reads versions
published elsewhere, a wrong key or endpoint is one line, and nothing of a dataset lands on disk.

Every `synthfactory` here is a subprocess with its own working directory and HOME; the store's
credentials reach it only through AWS_* variables, and the secret is checked for in every output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from synthfactory.storage import Location, storage_options
from tests.conftest import cli_command, cli_env, free_port, make_recipe, start_moto

BUCKET = "sf-object-store"
NAME = "s3tiny"
BATCHES, SIZE = 4, 2
SECRET = f"sf-test-secret-{uuid.uuid4().hex}"  # moto accepts any key; this one must never be printed or stored
KEY_ID = "SFTESTKEYID" + uuid.uuid4().hex[:9].upper()
DATASET_MARKERS = ("_delta_log", "_staging", "_index", "_embeddings", "_cards", "_quarantine", ".parquet")


@pytest.fixture(scope="module")
def s3():
    """A real S3 server on 127.0.0.1 (moto's server mode) with one bucket; yields the AWS_*
    variables a client needs (the endpoint, a key and the secret)."""
    import boto3

    server, endpoint = start_moto()
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _options(env: dict[str, str], uri: str):
    return storage_options(uri, env=env)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The tiny recipe every run here shares: greedy decoding, so a rerun anywhere makes the same rows."""
    folder = tmp_path_factory.mktemp("recipe")
    return make_recipe(folder, name=NAME, batches__count=BATCHES, batches__size=SIZE, grading__method="logprobs",
                       generation__prompt_template="Explain {{ topic }} in one or two sentences.",
                       generation__sampling__temperature=0.0)


def _machine(tmp_path_factory, name: str, s3: dict, prefect_api_url: str, ray_address: str):
    """A fresh "machine": its own working directory, HOME and TMPDIR, nothing local from other runs.
    Ray keeps /tmp (RAY_TMPDIR): its sockets' paths must stay short."""
    root = tmp_path_factory.mktemp(name)
    for folder in ("work", "home", "tmp"):
        (root / folder).mkdir()
    env = cli_env(prefect_api_url, ray_address, HOME=str(root / "home"), TMPDIR=str(root / "tmp"),
                  RAY_TMPDIR="/tmp", **s3)
    env.pop("PREFECT_HOME", None)
    token = Path.home() / ".ray" / "auth_token"  # Ray's cluster token (token auth): what any node joining needs
    if ray_address and token.is_file():
        env["RAY_AUTH_TOKEN_PATH"] = str(token)
    return root / "work", env


def _run(command: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _summary(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _new_files(since: float, *roots: Path, prune=lambda folder, names: names) -> list[Path]:
    """The files under `roots` modified since `since`; `prune(folder, subfolders)` names the
    subfolders of `folder` to walk into (all of them by default)."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root, onerror=lambda e: None):
            dirs[:] = prune(folder, dirs)
            if "pyvenv.cfg" in files:  # a virtual environment (other clones' .venv: most of /tmp's files)
                dirs[:] = []
            for name in files:
                path = Path(folder) / name
                try:
                    if path.stat().st_mtime >= since and path.is_file():
                        found.append(path)
                except OSError:
                    continue
    return found


def _ray_session() -> str | None:
    import ray

    return ray.get_runtime_context().get_session_name() if ray.is_initialized() else None


def _tmp_pruner(tmp_path_factory, ray_session: str | None):
    """What of /tmp is walked for files a run wrote: all of it but other tests' folders (pytest's
    temporary folders: every session's, both pytest-xdist workers' included; this machine's cwd,
    HOME and TMPDIR are walked on their own), other Ray clusters' sessions (this run's cluster's is walked),
    other tests' Ray temp folders, .git folders and virtual environments (in `_new_files`)."""
    import getpass
    import tempfile

    basetemp = tmp_path_factory.getbasetemp().resolve()
    skip = {basetemp, basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp}
    try:
        skip.add((Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}").resolve())
    except (KeyError, OSError):
        pass

    def prune(folder: str, names: list[str]) -> list[str]:
        here = Path(folder)
        kept = []
        for name in names:
            path = here / name
            if name == ".git" or path in skip:
                continue
            if here == Path("/tmp") and name.startswith("sf-ray-"):  # test_scale's two-node clusters
                continue
            if here == Path("/tmp/ray") and name.startswith("session_") and name != ray_session:
                continue
            kept.append(name)
        return kept

    return prune


def _holding(paths: list[Path], needles: list[bytes]) -> list[Path]:
    """The files among `paths` whose bytes hold any of `needles` (files over 50 MB are skipped)."""
    hits = []
    for path in paths:
        try:
            if path.stat().st_size > 50 << 20:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if any(n in data for n in needles):
            hits.append(path)
    return hits


@pytest.fixture(scope="module")
def published(s3, recipe, tmp_path_factory, prefect_api_url, ray_cluster):
    """One run through the Prefect flow (the deployment's path) to s3://BUCKET/e2e, from a fresh
    machine; what it wrote on the local disk is looked for afterwards."""
    cwd, env = _machine(tmp_path_factory, "machine-a", s3, prefect_api_url, ray_cluster)
    store = f"s3://{BUCKET}/e2e"
    started = time.time() - 1
    done = _run(cli_command("run", str(recipe), "--store", store, "--json"), cwd, env)
    summary = _summary(done)
    local = _new_files(started, cwd, Path(env["HOME"]), Path(env["TMPDIR"]))
    # /tmp beyond the run's TMPDIR (where the engines, Ray and anything naming /tmp write): shared with
    # every other process on the machine (pytest-xdist's other worker, other sessions), whose stores
    # look like any store; there a file is the run's by its dataset's name or by what it holds
    shared = _new_files(started, Path("/tmp"), prune=_tmp_pruner(tmp_path_factory, ray_session=_ray_session()))
    return {"summary": summary, "store": store, "uri": f"{store}/{NAME}", "local": local, "shared": shared,
            "cwd": cwd, "recipe_folder": recipe.parent, "output": done.stdout + done.stderr}


def test_a_run_publishes_to_s3_and_every_reader_loads_it(s3, published):
    import datasets
    from deltalake import DeltaTable

    from synthfactory import load_dataset_version
    from synthfactory.store import DatasetStore

    summary, uri = published["summary"], published["uri"]
    assert summary["version"] == 1 and summary["generated"] == BATCHES * SIZE
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    assert summary["accepted"] > 0

    options = _options(s3, uri)
    ds = load_dataset_version(uri, options=options)
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == summary["accepted"]
    table = DeltaTable(uri, storage_options=options.delta)
    assert table.to_pyarrow_table().num_rows == ds.num_rows and table.version() == 0
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == sorted(ds["id"])
    streamed = datasets.load_dataset("parquet", data_files=f"{uri}/*.parquet", split="train", streaming=True,
                                     storage_options=dict(options.fsspec))  # datasets itself (a copy: it adds keys)
    assert sorted(row["id"] for row in streamed) == sorted(ds["id"])
    [info] = DatasetStore(uri, options).versions()
    assert info.version == 1 and info.rows == ds.num_rows

    fs = Location.of(uri, options).fs
    card = f"{BUCKET}/e2e/{NAME}/_cards/v1"
    assert fs.exists(f"{card}/README.md"), fs.ls(f"{BUCKET}/e2e/{NAME}")
    assert fs.cat_file(f"{card}/README.md").decode().startswith("---")
    assert any(p.endswith(".png") for p in fs.find(card)), fs.find(card)
    assert fs.exists(f"{BUCKET}/e2e/{NAME}/_index") and fs.exists(f"{BUCKET}/e2e/{NAME}/_embeddings")
    assert not fs.exists(f"{BUCKET}/e2e/{NAME}/_staging") or not fs.ls(f"{BUCKET}/e2e/{NAME}/_staging")


def test_nothing_of_the_dataset_is_written_on_the_local_disk_and_no_secret_anywhere(s3, published):
    local = [p for p in published["local"] if not p.is_relative_to(published["recipe_folder"])]
    by_name = [p for p in local if NAME in str(p) or any(m in str(p) for m in DATASET_MARKERS)]
    by_name += [p for p in published["shared"] if NAME in str(p)]
    assert not by_name, by_name
    options = _options(s3, published["uri"])
    from synthfactory.store import DatasetStore

    rows = DatasetStore(published["uri"], options).read(columns=["id"])["id"].to_pylist()
    everywhere = local + published["shared"]
    assert not _holding(everywhere, [r.encode() for r in rows]), "rows of the dataset on the local disk"
    assert not _holding(everywhere, [SECRET.encode()]), "the secret on the local disk"
    fs = Location.of(published["uri"], options).fs
    for path in fs.find(f"{BUCKET}/e2e"):  # cards, metadata, staging records: no secret in the bucket either
        assert SECRET.encode() not in fs.cat_file(path), path


def test_sigkilled_run_resumes_on_another_machine_with_no_local_state(s3, recipe, published, tmp_path_factory,
                                                                      prefect_api_url, ray_cluster):
    """Killed (`--no-prefect`) on machine B after its first batch; rerun through the Prefect flow on
    machine C: the finished batches come from the bucket's staging (both executors stage alike), no
    batch is made twice and none is lost, and the rows equal an uninterrupted run's. (This was
    test_resume.py on a local store; a local store's kill and rerun through Prefect: test_target.py.)"""
    store = f"s3://{BUCKET}/resume"
    uri = f"{store}/{NAME}"
    staging = Location.of(f"{uri}/_staging", _options(s3, uri))
    cwd_b, env_b = _machine(tmp_path_factory, "machine-b", s3, prefect_api_url, ray_cluster)
    command = cli_command("run", str(recipe), "--store", store, "--json")
    first = subprocess.Popen([*command, "--no-prefect"], cwd=cwd_b, env=env_b, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    finished: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None and not finished:
        finished = {e.name.rsplit("-", 1)[0] for e in staging.glob("*-validate")}
        time.sleep(0.2)
    assert finished, "no batch finished before the deadline"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = datetime.now(timezone.utc)
    finished = {e.name.rsplit("-", 1)[0] for e in staging.glob("*-validate")}
    from synthfactory.store import DatasetStore

    assert not DatasetStore(uri, _options(s3, uri)).versions(), "the killed run must not have published"
    assert len(finished) < BATCHES

    cwd_c, env_c = _machine(tmp_path_factory, "machine-c", s3, prefect_api_url, ray_cluster)
    summary = _summary(_run(command, cwd_c, env_c))
    assert summary["version"] == 1 and summary["batches"] == BATCHES
    assert summary["batches_resumed"] >= len(finished) > 0
    per_batch = SIZE * 3  # one generation and two judge criteria per row
    assert summary["engine_requests"] <= (BATCHES - len(finished)) * per_batch  # 0 finished batches regenerated

    assert summary["generated"] == BATCHES * SIZE  # every row once: no batch made twice, none lost
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]

    resumed = DatasetStore(uri, _options(s3, uri)).read()
    uninterrupted = DatasetStore(published["uri"], _options(s3, published["uri"])).read()

    def key(t):
        return sorted(zip(t["batch_id"].to_pylist(), t["id"].to_pylist(), t["text"].to_pylist(), strict=True))

    assert key(resumed) == key(uninterrupted)
    assert resumed.num_rows == summary["accepted"] == len(set(resumed["id"].to_pylist()))
    assert len(DatasetStore(uri, _options(s3, uri)).versions()) == 1
    for row in resumed.select(["batch_id", "created_at"]).to_pylist():  # finished batches' rows predate the kill
        if row["batch_id"] in finished:
            assert row["created_at"] < killed_at
    assert not staging.ls(), "staged batch results are cleaned after publishing"


def test_near_duplicates_of_a_version_published_from_another_machine_are_caught(s3, recipe, published,
                                                                                tmp_path_factory, prefect_api_url,
                                                                                ray_cluster):
    """Machine D runs the recipe again on the dataset machine A published: greedy decoding makes the
    same answers, and the index of version 1, read from the bucket, catches every one of them."""
    cwd, env = _machine(tmp_path_factory, "machine-d", s3, prefect_api_url, ray_cluster)
    done = _run(cli_command("run", str(recipe), "--store", published["store"], "--json", "--no-prefect"), cwd, env)
    assert SECRET not in done.stdout + done.stderr
    from synthfactory.store import DatasetStore

    store = DatasetStore(published["uri"], _options(s3, published["uri"]))
    v1_ids = set(store.read(version=1, columns=["id"])["id"].to_pylist())
    caught = [r for r in store.read_quarantine().to_pylist() if r["version"] == 2]
    dups = [r for r in caught if r["reason"].split(":")[0] in ("exact_duplicate", "near_duplicate")]
    assert dups, caught
    assert {r["reason"].split(" of ", 1)[1] for r in dups} <= v1_ids  # each names the row of version 1 it repeats
    if done.returncode == 0:  # rows that are not duplicates may pass; none of them repeats version 1
        assert not set(store.rows_added_by(2)["id"].to_pylist()) & v1_ids
    else:
        assert done.returncode == 1 and ("min_rows" in done.stderr or "publish" in done.stderr), done.stderr


def test_two_concurrent_runs_give_version_1_and_2(s3, tmp_path_factory, prefect_api_url, ray_cluster):
    """Two runs through Prefect, started together on two machines against one dataset: they queue on
    the dataset's global concurrency limit, and each publishes its own version."""
    folder = tmp_path_factory.mktemp("recipe-concurrent")
    racing = make_recipe(folder, name="racing", batches__count=1, batches__size=2, grading__method="logprobs")
    store = f"s3://{BUCKET}/concurrent"
    command = cli_command("run", str(racing), "--store", store, "--json")
    runs = []
    for name in ("machine-e", "machine-f"):
        cwd, env = _machine(tmp_path_factory, name, s3, prefect_api_url, ray_cluster)
        runs.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True))
    outs = [r.communicate(timeout=600) for r in runs]
    summaries = [_summary(subprocess.CompletedProcess(command, r.returncode, *o))
                 for r, o in zip(runs, outs, strict=True)]
    assert sorted(s["version"] for s in summaries) == [1, 2]
    from synthfactory.store import DatasetStore

    uri = f"{store}/racing"
    versions = DatasetStore(uri, _options(s3, uri)).versions()
    assert [v.version for v in versions] == [1, 2]
    assert sorted(v.metadata.run_id for v in versions) == sorted(s["run_id"] for s in summaries)


def test_racing_publishes_never_lose_a_commit(s3):
    """Writers commit version 1 of one dataset at the same moment, with no lock: S3's conditional
    put lets exactly one Delta commit through; each other is the one-line 'published meanwhile'
    error, and the table holds one version 1 with its rows (none lost, none twice)."""
    from synthfactory.errors import UserError
    from synthfactory.model.lineage import ROW_SCHEMA
    from synthfactory.model.metadata import VersionMetadata
    from synthfactory.store import DatasetStore

    fixture = json.loads((Path(__file__).parent / "fixtures" / "metadata_c6c96d3.json").read_text())
    uri = f"s3://{BUCKET}/race/ds"
    outcomes: dict[int, object] = {}
    start = threading.Barrier(4)

    def publish(writer: int) -> None:
        store = DatasetStore(uri, _options(s3, uri))
        rows = [{name: None for name in ROW_SCHEMA.names} | {"id": f"w{writer}-{i}", "text": "x", "version": 1}
                for i in range(3)]
        start.wait()
        try:
            outcomes[writer] = store.publish(rows, VersionMetadata.model_validate({**fixture, "version": 1}))
        except UserError as exc:
            outcomes[writer] = exc

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [w for w, o in outcomes.items() if o == 1]
    assert len(outcomes) == 4 and len(winners) == 1, outcomes
    for writer, outcome in outcomes.items():
        if writer not in winners:
            assert isinstance(outcome, UserError) and "published meanwhile" in str(outcome), outcome
    store = DatasetStore(uri, _options(s3, uri))
    assert [(v.version, v.rows) for v in store.versions()] == [(1, 3)]
    assert sorted(store.read(1, columns=["id"])["id"].to_pylist()) == [f"w{winners[0]}-{i}" for i in range(3)]


@pytest.mark.parametrize("case", ["wrong key", "unreachable endpoint"])
def test_a_wrong_key_or_endpoint_is_one_line_and_exit_1(case, s3, recipe, tmp_path_factory, record_property):
    """A run and a command with no recipe, each against a store it cannot reach: one line naming the
    store and the cause, exit 1, before any engine starts; the seconds are recorded, not asserted
    tight (the bound is the probe's timeouts: connect 5 s, 3 attempts)."""
    # no Prefect server and no Ray: the probe fails first (the API URL answers nothing, on purpose)
    cwd, env = _machine(tmp_path_factory, "machine-bad", s3, f"http://127.0.0.1:{free_port()}/api", None)
    server = None
    if case == "unreachable endpoint":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    else:  # a server that checks keys (moto's IAM-like auth from the first request): this key is unknown
        server, env["AWS_ENDPOINT_URL"] = start_moto(INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        for command in (cli_command("run", str(recipe), "--store", f"s3://{BUCKET}/e2e", "--no-prefect"),
                        cli_command("versions", f"s3://{BUCKET}/e2e/{NAME}")):
            started = time.monotonic()
            done = _run(command, cwd, env, timeout=180)
            seconds = time.monotonic() - started
            record_property(f"{case}: {command[1]} seconds", round(seconds, 1))
            print(f"{case}: {command[1]} exited {done.returncode} in {seconds:.1f} s: {done.stderr.strip()}")
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode == 1, done.stderr[-2000:]
            assert len(lines) == 1 and lines[0].startswith(f"synthfactory: error: store s3://{BUCKET}/e2e"), lines
            cause = "Access Key Id you provided does not exist" if case == "wrong key" else "Could not connect"
            assert cause in lines[0]
            assert SECRET not in done.stdout + done.stderr and KEY_ID not in done.stdout + done.stderr
            assert seconds < 60
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
