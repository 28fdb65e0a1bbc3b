"""Target rows, budgets, cost and preview on the real things: Prefect, a local Ray cluster, the
bundled SmolLM2 through llama.cpp, GX suites and Delta tables."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from synthfactory import load_dataset_version
from synthfactory.store import DatasetStore
from tests.conftest import ROOT, cli_command, cli_env, make_recipe, prefect_call, sigkill_after_first_batch

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")


def _counts_reconcile(summary: dict, quarantine: list[dict]) -> None:
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    over = [r for r in quarantine if r["reason"].startswith("over_target")]
    assert len(over) == summary["reasons"].get("over_target", 0)


def test_target_rows_on_the_quickstart_survives_a_sigkill_and_publishes_exactly_10(tmp_path, prefect_api_url,
                                                                                   ray_cluster):
    store = tmp_path / "store"
    staging = store / "quickstart" / "_staging"
    env = cli_env(prefect_api_url, ray_cluster)
    command = cli_command("run", str(ROOT / "recipes" / "quickstart.yaml"), "--store", str(store),
                          "--target-rows", "10", "--json")
    finished, killed_at = sigkill_after_first_batch(command, env, staging)
    assert not DatasetStore(store / "quickstart").versions(), "the killed run must not have published"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])

    assert summary["accepted"] == 10 and summary["target_rows"] == 10 and summary["stopped"] == "target"
    ds = load_dataset_version(store / "quickstart")
    assert ds.num_rows == 10 and len(set(ds["id"])) == 10
    assert summary["batches_resumed"] >= len(finished)
    for row in ds:  # rows of batches finished before the kill were not made again
        if row["batch_id"] in finished:
            assert row["created_at"] < killed_at
    _counts_reconcile(summary, DatasetStore(store / "quickstart").read_quarantine().to_pylist())
    assert not staging.exists() or not any(staging.iterdir()), "staged batch results are cleaned after publishing"
    cost = summary["cost"]
    assert cost["money"] is None and cost["per_accepted_row"]["money"] is None  # the quickstart gives no prices
    assert cost["per_accepted_row"]["tokens"] == pytest.approx(cost["tokens"] / 10, abs=0.001)
    assert cost["tokens"] == cost["prompt_tokens"] + cost["completion_tokens"] > 0

    listing = subprocess.run(cli_command("versions", str(store / "quickstart")), env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0 and " target " in listing.stdout
    assert f"{cost['per_accepted_row']['tokens']:.4g}" in listing.stdout


def _tree(folder: Path) -> str:
    """Every path and every byte under `folder`."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_token_budget_stops_early_publishes_what_passed_and_records_it(tmp_path, prefect_api_url, ray_cluster):
    from flows.factory import factory_flow
    from synthfactory.run import progress

    budget = 1500
    recipe = make_recipe(tmp_path, name="budgeted", batches__count=6, batches__size=2,
                         card={"price_per_million_tokens": 2.0, "currency": "EUR"}, budget={"max_tokens": budget})
    updates: list = []
    with progress.listening(updates.append):
        state = factory_flow(recipe_path=str(recipe), store=str(tmp_path / "store"), return_state=True)
    summary = state.result()

    assert summary["stopped"] == "budget" and summary["budget"]["stopped_by"] == "max_tokens"
    assert summary["batches"] < summary["batches_planned"] == 6
    assert 0 < summary["accepted"] and summary["generated"] == 2 * summary["batches"]
    # the documented bound: the limit plus the batches in flight when the run stopped starting them
    per_batch = summary["cost"]["tokens"] / summary["batches"]
    in_flight = summary["budget"]["batches_in_flight_at_stop"]
    assert summary["cost"]["tokens"] <= budget + in_flight * per_batch * 1.5
    assert summary["cost"]["money"] == pytest.approx(summary["cost"]["tokens"] * 2.0 / 1e6, abs=1e-6)
    assert summary["cost"]["currency"] == "EUR" and summary["cost"]["per_accepted_row"]["money"] is not None

    store = DatasetStore(tmp_path / "store" / "budgeted")
    meta = store.versions()[-1].metadata
    assert meta.stop.stopped == "budget" and meta.stop.budget.limits == {"max_tokens": budget}
    card = (Path(store.uri) / "_cards" / "v1" / "README.md").read_text()
    assert "`stopped: budget` (`max_tokens`)" in card and "per accepted row" in card
    response = prefect_call("POST", f"{prefect_api_url}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}, "limit": 50, "offset": 0,
        "sort": "CREATED_DESC"})
    response.raise_for_status()
    by_type = {a["type"]: SimpleNamespace(**a) for a in response.json()}
    assert "`stopped: budget` (`max_tokens`)" in by_type["markdown"].data
    assert "EUR" in by_type["markdown"].data
    assert by_type["progress"].data == 100.0
    assert [u.phase for u in updates][-1] == "done" and updates[-1].accepted == summary["accepted"]

    # preview on the same store: rows and an estimate, and not one byte of the store changes
    before = _tree(tmp_path / "store")
    env = cli_env(prefect_api_url, ray_cluster)
    shown = subprocess.run(cli_command("preview", str(recipe), "--store", str(tmp_path / "store"), "--rows", "3"),
                           env=env, capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.count("    prompt: Explain ") == 3 and shown.stdout.count("    outcome: ") == 3
    assert "estimate from" in shown.stdout and "engine-seconds" in shown.stdout and "EUR" in shown.stdout
    asked = subprocess.run(cli_command("preview", str(recipe), "--store", str(tmp_path / "store"), "--rows", "3",
                                       "--target-rows", "20", "--json"),
                           env=env, capture_output=True, text=True, timeout=600)
    assert asked.returncode == 0, asked.stderr[-3000:]
    preview = json.loads(asked.stdout.strip().splitlines()[-1])
    assert len(preview["rows"]) == 3 and {r["outcome"] for r in preview["rows"]} <= {"accepted", "rejected",
                                                                                     "quarantined"}
    estimate = preview["estimate"]
    assert estimate["target_rows"] == 20 and estimate["previewed"] == 3
    assert estimate["tokens_per_candidate"] > 0 and estimate["money"] is not None
    assert _tree(tmp_path / "store") == before


def test_target_rows_starts_only_the_batches_it_needs(tmp_path):
    from flows.factory import factory_flow

    recipe = make_recipe(tmp_path, name="aimed", batches__count=6, batches__size=2, batches__target_rows=3)
    summary = factory_flow(recipe_path=str(recipe), store=str(tmp_path / "store"))
    assert summary["accepted"] == 3 and summary["stopped"] == "target"
    assert summary["batches"] < summary["batches_planned"] == 6
    ds = load_dataset_version(tmp_path / "store" / "aimed")
    assert ds.num_rows == 3
    _counts_reconcile(summary, DatasetStore(tmp_path / "store" / "aimed").read_quarantine().to_pylist())
