"""Hub-style publishing on two real published versions: cards with plots, export that
`datasets.load_dataset` reads, push up to the network call, diff."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import datasets
import pytest
import yaml

from synthfactory import load_dataset_version
from synthfactory.publish.hub import export_version, plan_push
from synthfactory.store import DatasetStore
from tests.conftest import make_recipe

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")

PNG = b"\x89PNG\r\n\x1a\n"
TOKEN = "hf_SecretToken0123456789abcdef"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, prefect_api_url, ray_cluster):
    """Two runs of one recipe through the Prefect flow: their summaries, and version 1's row ids
    read before the second run."""
    from flows.factory import factory_flow

    tmp = tmp_path_factory.mktemp("publishing")
    recipe = make_recipe(tmp, batches__count=1, batches__size=4, grading__method="logprobs",
                         card={"license": "apache-2.0", "tags": ["explanations"], "price_per_gpu_hour": 2.5,
                               "pretty_name": "Tiny explanations"})
    store = tmp / "store"
    first = factory_flow(recipe_path=str(recipe), store=str(store))
    v1_ids = load_dataset_version(store / "tiny", version=1)["id"]
    second = factory_flow(recipe_path=str(recipe), store=str(store))
    return SimpleNamespace(dataset=store / "tiny", summaries=[first, second], v1_ids=v1_ids)


@pytest.fixture(scope="module")
def two_versions(two_runs):
    return two_runs.dataset


def test_second_run_is_version_2_and_version_1_is_unchanged(two_runs):
    first, second = two_runs.summaries
    dataset = two_runs.dataset
    assert (first["version"], second["version"]) == (1, 2)
    assert second["run_id"] != first["run_id"]
    assert load_dataset_version(dataset, version=1)["id"] == two_runs.v1_ids
    latest = load_dataset_version(dataset)
    assert latest.num_rows == first["accepted"] + second["accepted"]
    assert sorted(set(latest["version"])) == [1, 2]
    assert len(set(latest["id"])) == latest.num_rows  # a new version samples anew, no repeats
    assert [v.version for v in DatasetStore(dataset).versions()] == [1, 2]


def _card(path) -> tuple[dict, str]:
    text = path.read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_every_published_version_has_a_card_with_plots(two_versions):
    store = DatasetStore(two_versions)
    for info in store.versions():
        folder = two_versions / "_cards" / f"v{info.version}"
        header, body = _card(folder / "README.md")
        meta = info.metadata
        assert header["license"] == "apache-2.0" and "synthetic" in header["tags"] and "explanations" in header["tags"]
        assert header["size_categories"] == ["n<1K"] and header["task_categories"] == ["text-generation"]
        rows = load_dataset_version(two_versions, version=info.version).num_rows
        assert f"This version holds **{rows}** rows" in body
        assert header["configs"][0]["data_files"][0]["path"] == "data/*.parquet"
        # its numbers are the commit metadata's
        assert f"| generated | {meta.totals.generated} |" in body and f"| accepted | {meta.totals.accepted} |" in body
        assert f"| run id | {meta.run_id} |" in body and f"| recipe hash | {meta.recipe_hash} |" in body
        assert f"| engine-seconds | {meta.cost.engine_seconds:.4g} |" in body
        money = 2.5 * meta.cost.engine_seconds / 3600
        assert f"| cost | {money:.4f} USD |" in body
        assert "Explain {{ topic }} in two sentences." in body and "**accuracy**: Facts are correct." in body
        for plot in ("score_histogram.png", "metrics_across_versions.png"):
            data = (folder / plot).read_bytes()
            assert data.startswith(PNG) and len(data) > 5_000
    _, body_v2 = _card(two_versions / "_cards" / "v2" / "README.md")
    assert "| parent versions | tiny v1 |" in body_v2


@pytest.mark.parametrize("version", [1, 2])
def test_export_loads_with_datasets_as_the_same_rows(two_versions, tmp_path, version, capsys):
    from synthfactory.cli import main

    out = tmp_path / f"export-v{version}"
    assert main(["export", str(two_versions), "--version", str(version), "--to", str(out)]) == 0, \
        capsys.readouterr().err[-2000:]
    hub = datasets.load_dataset(str(out))["train"]
    ours = load_dataset_version(two_versions, version=version)
    assert hub.num_rows == ours.num_rows > 0
    assert dict(zip(hub["id"], hub["text"], strict=True)) == dict(zip(ours["id"], ours["text"], strict=True))
    header, body = _card(out / "README.md")
    assert re.fullmatch(r"data/train-[0-9a-f]{12}\.parquet", header["configs"][0]["data_files"][0]["path"])
    meta = DatasetStore(two_versions).versions()[version - 1].metadata
    assert header["pretty_name"] == "Tiny explanations" and f"(version {version})" in body
    assert f"| generated | {meta.totals.generated} |" in body
    assert (out / "score_histogram.png").read_bytes().startswith(PNG)


def test_export_and_push_default_to_the_latest_version(two_versions, tmp_path, capsys):
    from synthfactory.cli import main

    out = tmp_path / "latest"
    assert main(["export", str(two_versions), "--to", str(out)]) == 0
    assert f"exported {two_versions} version 2 to {out}" in capsys.readouterr().out
    assert datasets.load_dataset(str(out), split="train").num_rows == load_dataset_version(two_versions).num_rows
    assert "(version 2)" in _card(out / "README.md")[1]
    assert main(["push", str(two_versions), "--repo", "my-org/tiny", "--dry-run"]) == 0
    assert f"would push {two_versions} version 2 to datasets/my-org/tiny" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nothing"), "--to", str(tmp_path / "out")]) == 2
    assert "no published dataset here" in capsys.readouterr().err


def test_reexport_to_the_same_folder_loads_the_new_rows(two_versions, tmp_path):
    # datasets caches a local folder by its name and config: the data file's name must change
    out = tmp_path / "quickstart"
    loaded = []
    for version in (1, 2):
        export_version(two_versions, version, out)
        loaded.append(datasets.load_dataset(str(out), split="train").num_rows)
    assert loaded == [load_dataset_version(two_versions, version=v).num_rows for v in (1, 2)]
    assert loaded[0] < loaded[1]


@pytest.mark.parametrize("fmt,expected", [("parquet", "--format 'parquet': choose one of hub, jsonl, messages"),
                                          ("dpo",
                                           "--format dpo needs preference pairs; this dataset's method is 'text'")])
def test_a_format_the_dataset_cannot_take_exits_2_with_one_line(two_versions, tmp_path, capsys, fmt, expected):
    from synthfactory.cli import main

    assert main(["export", str(two_versions), "--version", "1", "--to", str(tmp_path / "out"), "--format", fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and not (tmp_path / "out").exists()


def test_push_plans_one_commit_and_a_version_tag_without_leaking_the_token(two_versions, tmp_path, capsys, caplog,
                                                                           monkeypatch):
    from synthfactory.cli import main

    plan = plan_push(two_versions, 2, "my-org/tiny", tmp_path / "push")
    assert plan.tag == "v2" and plan.repo_id == "my-org/tiny"
    operations = plan.operations()
    data_file = next(op.path_in_repo for op in operations if op.path_in_repo.startswith("data/"))
    assert sorted(op.path_in_repo for op in operations) == [
        "README.md", data_file, "metrics_across_versions.png", "score_histogram.png"]
    assert re.fullmatch(r"data/train-[0-9a-f]{12}\.parquet", data_file)
    assert all((plan.folder / op.path_in_repo).is_file() for op in operations)
    header, body = _card(plan.folder / "README.md")
    assert 'datasets.load_dataset("my-org/tiny", revision="v2")' in body

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(two_versions), "--version", "2", "--repo", "my-org/tiny", "--private", "--dry-run"]) == 0
    done = capsys.readouterr()
    assert "one commit, tag v2" in done.out and f"add {data_file}" in done.out
    assert "(private)" in done.out
    assert TOKEN not in done.out + done.err + caplog.text  # printed nor logged
    monkeypatch.delenv("HF_TOKEN")
    assert main(["push", str(two_versions), "--version", "2", "--repo", "no-slash", "--dry-run"]) == 2
    assert "ORG/NAME" in capsys.readouterr().err.strip().splitlines()[-1]


def test_diff_reports_rows_added_metric_deltas_and_drift(two_versions, capsys):
    from synthfactory.cli import main

    assert main(["diff", str(two_versions), "1", "2", "--json"]) == 0, capsys.readouterr().err[-2000:]
    diff = json.loads(capsys.readouterr().out)
    v1, v2 = (v.metadata for v in DatasetStore(two_versions).versions())
    rows_v1 = load_dataset_version(two_versions, version=1).num_rows
    rows_v2 = load_dataset_version(two_versions, version=2).num_rows
    assert (diff["rows_a"], diff["rows_b"]) == (rows_v1, rows_v2)
    assert diff["rows_added"] == rows_v2 - rows_v1 == v2.totals.accepted + v2.totals.real_published
    assert diff["rows_removed"] == 0
    assert diff["metrics"]["accepted"] == {"a": v1.totals.accepted, "b": v2.totals.accepted,
                                           "delta": v2.totals.accepted - v1.totals.accepted}
    assert diff["drift_frechet"] is None or diff["drift_frechet"] >= 0.0
    if v1.totals.accepted >= 2 and v2.totals.accepted >= 2:
        assert diff["drift_frechet"] is not None
    assert main(["diff", str(two_versions), "1", "2"]) == 0
    assert f"{diff['rows_added']} rows added, 0 removed" in capsys.readouterr().out
    assert main(["diff", str(two_versions), "1", "9"]) == 2
    assert "no version 9" in capsys.readouterr().err
