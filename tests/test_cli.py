"""The command line as a user meets it: SIGTERM to `synthfactory run` (a Prefect cancel, a stopping
container) ends the run with one line and exit 143, leaves no engine or Ray process behind, and keeps the
batches it finished where a rerun reads them; the watchdog that bounds the exit when a teardown hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from synthfactory.registry import STAGES
from synthfactory.run.staging import read_staged
from tests.conftest import ROOT, TOPICS, cli_command, make_recipe, prefect_call, wait_for

LAST_STAGE = list(STAGES)[-1]
STOPPED = "synthfactory run: stopped by SIGTERM; "


def finished_batches(staging: Path) -> set[str]:
    """Ids of the batches whose every stage finished (their last stage's result is staged)."""
    return {p.name[:-len(LAST_STAGE) - 1] for p in staging.glob(f"*-{LAST_STAGE}")} if staging.is_dir() else set()


def processes_of_session(sid: int) -> list[str]:
    """`pid command` of every process left in session `sid` (the CLI's, started with a session of its own:
    its Ray cluster, engine actors and Prefect's temporary server inherit it)."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,sid=,args="], capture_output=True, text=True).stdout
    return [f"{p[0]} {p[2][:120]}" for p in (line.split(None, 2) for line in listing.splitlines())
            if len(p) == 3 and p[1] == str(sid)]


def outliving(sid: int, grace_s: float = 30) -> list[str]:
    """What is left of session `sid` once `grace_s` passed or nothing is (a killed process takes a moment)."""
    deadline = time.monotonic() + grace_s
    while (left := processes_of_session(sid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def run_env(prefect_api_url: str | None) -> dict[str, str]:
    """A run that starts its own Ray cluster (what a container runs), so that everything it started is
    in its session; with the session's Prefect server, or the temporary one when `prefect_api_url` is None."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PREFECT_API_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def sigterm_after_first_batch(command: list[str], env: dict[str, str], staging: Path, log: Path, group: bool):
    """Start the run in a session of its own and SIGTERM it once a batch finished: its process alone (a
    `docker stop`), or its whole process group (a Prefect worker cancelling a flow run; the local Ray
    cluster gets it too). Returns (the process, finished batch ids, when)."""
    with log.open("w") as err:
        run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        wait_for(lambda: run.poll() is not None or finished_batches(staging), 600, "a batch finished", log)
        assert run.poll() is None, f"the run ended before a batch finished: {log.read_text()[-3000:]}"
        finished, signalled = finished_batches(staging), datetime.now(timezone.utc)
        if group:
            os.killpg(run.pid, signal.SIGTERM)
        else:
            run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)  # the bound is 10 s; this machine is noisy: the time is measured, not asserted
    except BaseException:
        os.killpg(run.pid, signal.SIGKILL)
        raise
    return run, finished, signalled


@pytest.mark.parametrize("path,to", [("prefect", "process"), ("prefect", "group"), ("no-prefect", "process")])
def test_sigterm_stops_the_run_and_keeps_its_batches_for_the_rerun(tmp_path, prefect_api_url, path, to):
    topics = [f"{topic} ({n})" for n in range(3) for topic in TOPICS]  # 36 seeds: 9 batches, the run goes on
    recipe = make_recipe(tmp_path, topics=topics, batches__count=9, batches__size=4)
    store, log = tmp_path / "store", tmp_path / "stderr.txt"
    staging = store / "tiny" / "_staging"
    command = cli_command("run", str(recipe), "--store", str(store), "--json",
                          *(["--no-prefect"] if path == "no-prefect" else []))
    env = run_env(prefect_api_url)
    run, finished, _ = sigterm_after_first_batch(command, env, staging, log, group=to == "group")

    stderr = log.read_text()
    assert run.returncode == 143, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    kept = finished_batches(staging)
    assert lines == [f"{STOPPED}{len(kept)} finished batch{'' if len(kept) == 1 else 'es'} kept in {staging}; "
                     "run the same command again to resume"], stderr[-3000:]
    assert finished <= kept, "a batch finished before the signal is gone from staging"
    assert not (store / "tiny" / "_delta_log").exists(), "a stopped run publishes nothing"
    left = outliving(run.pid)
    assert not left, f"processes the run started outlive it (engines, Ray, the API server): {left}"
    if path == "prefect":  # the flow run is marked crashed in the API, not left running
        runs = prefect_call("POST", f"{prefect_api_url}/flow_runs/filter",
                            json={"sort": "START_TIME_DESC", "limit": 100, "offset": 0}).json()
        assert [r["state_type"] for r in runs if r["parameters"].get("store") == str(store)] == ["CRASHED"]
    # every stage the run kept reads back, so the same command resumes from it (the rerun itself is
    # test_target.py's and test_object_store.py's: a killed run resumes and does not make them again)
    keys = sorted(p.name for p in staging.iterdir() if ".partial-" not in p.name)
    assert {f"{batch}-{stage}" for batch in kept for stage in STAGES} <= set(keys), keys
    assert [k for k in keys if read_staged(staging, k) is None] == []


HUNG_TEARDOWN = """
import os, signal, subprocess, sys, time
from synthfactory.cli import stop
from synthfactory.storage import Location

stop.HARD_EXIT_S = float(sys.argv[2])
child = subprocess.Popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with stop.SigtermGuard(lambda: Location.of(sys.argv[1])):
    if sys.argv[3] == "library":  # a library holds SIGTERM meanwhile (as Prefect's flow engine does) and goes on
        signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        print(child.pid, flush=True)  # guarded from here
        while True:
            time.sleep(0.1)
    finally:  # a teardown that hangs
        time.sleep(600)
"""


@pytest.mark.parametrize("how", ["watchdog", "second signal", "library"])
def test_a_hung_teardown_still_ends_with_the_line_and_no_children(tmp_path, how):
    """Whatever hangs after SIGTERM, the watchdog (or a second SIGTERM) ends the process: the line,
    exit 143, and its child processes killed."""
    staging = tmp_path / "_staging"
    staging.mkdir()
    for name in (f"a-{LAST_STAGE}", f"b-{LAST_STAGE}", "c-generate"):
        (staging / name).write_text("{}")
    hard_exit_s = "3600" if how == "second signal" else "1"
    script = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HUNG_TEARDOWN), str(staging), hard_exit_s, how],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    child = None
    try:
        child = int(script.stdout.readline())
        script.send_signal(signal.SIGTERM)
        if how == "second signal":
            time.sleep(1)  # the first SIGTERM is in its teardown, which hangs
            script.send_signal(signal.SIGTERM)
        _, stderr = script.communicate(timeout=120)
        assert script.returncode == 143, stderr
        assert stderr.splitlines() == [f"{STOPPED}2 finished batches kept in {staging}; run the same command "
                                       "again to resume"]
        deadline = time.monotonic() + 30
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the child process outlived the command"
    finally:
        script.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed child of a gone parent waits to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
