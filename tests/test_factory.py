"""End to end on real components: Prefect (test server), Ray (local cluster), GX, Delta, SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest

from synthfactory import load_dataset_version
from synthfactory.model.lineage import LINEAGE_COLUMNS
from synthfactory.store import DatasetStore
from tests.conftest import TOPICS, cli_command, cli_env, make_recipe, prefect_call

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")

JUDGE = {"grading__method": "logprobs"}  # P(yes) per criterion: the cheapest judge on 2 cores


def _run(recipe, store):
    from flows.factory import factory_flow

    return factory_flow(recipe_path=str(recipe), store=str(store))


def _reconciles(summary):
    return summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]


def test_end_to_end_publishes_version_1_with_lineage(tmp_path, prefect_api_url, ray_cluster):
    seeds = ("\n".join(TOPICS[:8]) + "\n\n" + "x" * 300 + "\n").encode() + b"bad \xff byte\n"
    recipe = make_recipe(tmp_path, seeds_text=seeds, batches__count=2, batches__size=4,
                         grading__threshold=0.3, **JUDGE)
    store = tmp_path / "store"
    summary = _run(recipe, store)

    assert summary["version"] == 1 and summary["generated"] == 8  # the 8 usable seeds, once each
    assert _reconciles(summary)
    assert summary["seeds_quarantined"] == 3
    ds = load_dataset_version(store / "tiny")
    assert isinstance(ds, datasets.Dataset)
    assert ds.num_rows == summary["accepted"] > 0
    assert set(LINEAGE_COLUMNS) <= set(ds.column_names)
    for row in ds:
        assert row["generator_model"] == row["judge_model"] == "smollm2-135m-instruct"
        assert row["source"] == "synthetic" and row["generation_depth"] == 1
        assert row["run_id"] == summary["run_id"] and row["score"] >= 0.3
        assert set(json.loads(row["scores"])) == {"accuracy", "clarity"}
        assert json.loads(row["sampling"])["max_tokens"] == 40 and row["text"]
    assert len(set(ds["id"])) == ds.num_rows

    kept = DatasetStore(store / "tiny").read_quarantine().to_pylist()
    assert len(kept) == summary["rejected"] + summary["quarantined"] + summary["seeds_quarantined"]
    seed_reasons = sorted(r["reason"].split(":")[0] for r in kept if r["stage"] == "seeds")
    assert seed_reasons == ["empty", "invalid_utf8", "too_long"]
    assert all(r["reason"].startswith("below_threshold") for r in kept if r["status"] == "rejected")

    # what a user types; a subprocess, since Prefect's console handler owns this process's streams
    out = subprocess.run(cli_command("versions", str(store / "tiny"), "--json"), capture_output=True, text=True,
                         env=cli_env(prefect_api_url), check=True).stdout
    listed = json.loads(out)
    assert [(v["version"], v["rows"], v["run_id"]) for v in listed] == [(1, ds.num_rows, summary["run_id"])]

    # the same recipe with no Prefect (the core's run driver on its local executor) publishes the
    # same rows; a `prefect` that cannot be imported proves the path never touches it
    blocked = tmp_path / "no-prefect"
    (blocked / "prefect").mkdir(parents=True)
    (blocked / "prefect" / "__init__.py").write_text("raise ImportError('prefect imported by run --no-prefect')\n")
    local = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "local"), "--no-prefect",
                                       "--json"),
                           capture_output=True, text=True, timeout=600,
                           env=cli_env(prefect_api_url, ray_cluster,
                                       PYTHONPATH=os.pathsep.join(
                                           filter(None, [str(blocked), os.environ.get("PYTHONPATH")]))))
    assert local.returncode == 0, local.stderr[-3000:]
    alone = json.loads(local.stdout.strip().splitlines()[-1])
    assert alone["prefect_flow_run_id"] is None and alone["run_id"] == summary["run_id"]
    assert {k: alone[k] for k in ("generated", "accepted", "rejected", "quarantined", "seeds_quarantined")} == \
        {k: summary[k] for k in ("generated", "accepted", "rejected", "quarantined", "seeds_quarantined")}
    same = load_dataset_version(tmp_path / "local" / "tiny")
    assert sorted(zip(same["id"], same["text"], strict=True)) == sorted(zip(ds["id"], ds["text"], strict=True))


def test_concurrent_runs_of_one_dataset_queue_and_publish_one_version_each(tmp_path, prefect_api_url):
    """Two runs started together: the dataset's Prefect concurrency limit makes the second wait, so
    it plans v2 against v1 instead of both claiming v1; publishes never interleave."""

    recipe = make_recipe(tmp_path, batches__count=1, batches__size=2, **JUDGE)
    store = tmp_path / "store"
    with ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(lambda _: _run(recipe, store), range(2)))

    assert sorted(s["version"] for s in summaries) == [1, 2]
    versions = DatasetStore(store / "tiny").versions()
    assert [v.version for v in versions] == [1, 2]
    by_version = {s["version"]: s for s in summaries}
    latest = load_dataset_version(store / "tiny")
    for version in (1, 2):  # each version's rows come from one run only
        runs = {r["run_id"] for r in latest if r["version"] == version}
        assert runs <= {by_version[version]["run_id"]}
    assert latest.num_rows == sum(s["accepted"] for s in summaries)
    flow_runs = prefect_call("POST", f"{prefect_api_url}/flow_runs/filter", json={
        "limit": 10, "offset": 0, "flow_runs": {"id": {"any_": [s["prefect_flow_run_id"] for s in summaries]}}}).json()
    assert sorted(r["name"] for r in flow_runs) == ["tiny-v1", "tiny-v2"]  # renamed once it knew its version


def test_remote_store_runs_queue_on_a_prefect_global_concurrency_limit(prefect_api_url):
    """Object-store datasets cannot be flock'ed: their runs take a one-slot Prefect global
    concurrency limit instead; two holders never overlap."""
    from prefect import flow

    from flows.executor import dataset_lock, lock_name

    dataset = DatasetStore("s3://bucket/tiny")
    spans: list[tuple[float, float]] = []

    @flow
    def hold(index: int) -> None:
        with dataset_lock(dataset):
            start = time.monotonic()
            time.sleep(1.5)
            spans.append((start, time.monotonic()))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hold, range(2)))
    first, second = sorted(spans)
    assert first[1] <= second[0]  # the second waited for the first
    limit = prefect_call("GET", f"{prefect_api_url}/v2/concurrency_limits/{lock_name(dataset)}").json()
    assert limit["limit"] == 1 and limit["active_slots"] == 0  # released after both


def test_batch_that_fails_its_suite_is_quarantined_not_published_and_the_ui_shows_it(tmp_path, prefect_api_url):
    """One run, two views: the store (the failed batch quarantined, its Data Docs page) and what the
    Prefect UI shows for the run, read back from the real Prefect API (run name with the version,
    tags, the progress artifact at 100%, the markdown report and the rejection table). What
    `validation.on_failure: fail` makes of such a batch is the driver's, whichever executor ran it:
    test_driver.py's `test_on_failure_fail_stops_the_local_run_unpublished`."""
    from prefect.client.orchestration import get_client

    from flows.factory import factory_flow

    suite = json.loads(make_recipe(tmp_path).with_name("suite.json").read_text())
    suite["expectations"].append({"type": "expect_column_values_to_not_match_regex",
                                  "kwargs": {"column": "prompt", "regex": "FORBIDDEN"}})
    topics = TOPICS[:4] + [f"FORBIDDEN topic {i}" for i in range(4)]
    recipe = make_recipe(tmp_path, name="ui_demo", topics=topics, suite=suite, **JUDGE)
    store = tmp_path / "store"
    state = factory_flow(recipe_path=str(recipe), store=str(store), return_state=True)
    summary = state.result()

    assert _reconciles(summary)
    assert summary["batches_quarantined"] == 1 and summary["batches_passed"] == 1
    published = load_dataset_version(store / "ui_demo")
    assert published.num_rows == summary["accepted"] == 4
    assert not any("FORBIDDEN" in p for p in published["prompt"])
    held = [r for r in DatasetStore(store / "ui_demo").read_quarantine().to_pylist() if r["stage"] == "validate"]
    assert len(held) == 4 and all("FORBIDDEN" in json.loads(r["row"])["prompt"] for r in held)
    result = json.loads(held[0]["validation"])
    assert result["success"] is False
    assert "expect_column_values_to_not_match_regex(prompt)" in result["failed_expectations"]
    assert held[0]["reason"].startswith("validation_failed: expect_column_values_to_not_match_regex")

    # the failed batch's Great Expectations Data Docs page, linked from the version's metadata
    meta = DatasetStore(store / "ui_demo").versions()[-1].metadata
    [(batch, url)] = meta.gate.data_docs.items()
    assert meta.gate.outcomes[batch] == "quarantined" and result["data_docs_url"] == url
    page = Path(url.removeprefix("file://"))
    assert page.is_file() and page.is_relative_to(store / "ui_demo" / "_data_docs")
    html = page.read_text()
    assert "expect_column_values_to_not_match_regex" in html or "not match" in html
    assert page.name == f"{batch}.html" and (store / "ui_demo" / "_data_docs" / "index.html").is_file()

    # the run page (was tests/test_ui.py, which ran the same recipe again)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    # the artifacts as the UI asks for them (prefect 3.8's client sends nulls its server rejects)
    response = prefect_call("POST", f"{prefect_api_url}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [str(run.id)]}}, "limit": 50, "offset": 0, "sort": "CREATED_DESC"})
    response.raise_for_status()
    artifacts = [SimpleNamespace(**a) for a in response.json()]
    assert run.name == "ui_demo-v1"
    assert {"synthfactory", "recipe:ui_demo", "engine:llamacpp"} <= set(run.tags)
    by_type = {a.type: a for a in artifacts}
    assert by_type["progress"].data == 100.0
    report = by_type["markdown"].data
    assert "# ui_demo version 1" in report
    assert (f"| {summary['generated']} | {summary['accepted']} | {summary['rejected']} "
            f"| {summary['quarantined']} |") in report
    assert "expect_column_values_to_not_match_regex(prompt)" in report
    table = json.loads(by_type["table"].data) if isinstance(by_type["table"].data, str) else by_type["table"].data
    assert table[0]["kind"] == "quarantined batch" and "not_match_regex" in table[0]["detail"]
    assert by_type["markdown"].key == "ui-demo-report"

