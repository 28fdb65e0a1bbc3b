"""Exactly once: SIGKILL a run midway, run it again; finished batches are not regenerated,
no row is duplicated, and one version is published. The killed run is a `--no-prefect` one and
the rerun goes through the Prefect flow: both executors stage a batch's stages alike, so either
resumes the other's run (a Prefect run killed and rerun: test_target.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from synthfactory import load_dataset_version
from synthfactory.store import DatasetStore
from tests.conftest import cli_command, cli_env, make_recipe, sigkill_after_first_batch

BATCHES, SIZE, CRITERIA = 6, 3, 2


@pytest.mark.usefixtures("ray_cluster")
def test_sigkill_midway_then_rerun_resumes_exactly_once(tmp_path, prefect_api_url, ray_cluster):
    recipe = make_recipe(tmp_path, batches__count=BATCHES, batches__size=SIZE, grading__method="logprobs")
    store = tmp_path / "store"
    staging = store / "tiny" / "_staging"
    env = cli_env(prefect_api_url, ray_cluster)
    command = cli_command("run", str(recipe), "--store", str(store), "--json")

    finished, killed_at = sigkill_after_first_batch([*command, "--no-prefect"], env, staging)
    assert not DatasetStore(store / "tiny").versions(), "the killed run must not have published"
    assert len(finished) < BATCHES

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])

    assert summary["version"] == 1 and summary["batches"] == BATCHES
    assert summary["batches_resumed"] >= len(finished)
    # engine calls on the rerun: at most the unfinished batches' generation + judge requests
    full_run = BATCHES * SIZE * (1 + CRITERIA)
    assert summary["engine_requests"] <= (BATCHES - len(finished)) * SIZE * (1 + CRITERIA) < full_run
    assert summary["generated"] == BATCHES * SIZE
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]

    ds = load_dataset_version(store / "tiny")
    assert ds.num_rows == summary["accepted"]
    assert len(set(ds["id"])) == ds.num_rows
    assert len(DatasetStore(store / "tiny").versions()) == 1
    assert finished <= set(ds["batch_id"])  # threshold 0: every graded row is published
    for row in ds:  # rows of batches finished before the kill were made before the kill, not regenerated
        if row["batch_id"] in finished:
            assert row["created_at"] < killed_at
    assert not staging.exists() or not any(staging.iterdir()), "staged batch results are cleaned after publishing"
