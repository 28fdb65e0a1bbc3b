"""Judges measured and paneled on real components: `synthfactory calibrate` with the shipped
quickstart judges (SmolLM2 on a local Ray cluster, MiniLM) on half the shipped labelled set; a panel
of two judges through a Prefect flow with a GX suite gating on their agreement; and the card of
a version published after a calibration citing it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from synthfactory.errors import NothingToPublishError
from synthfactory.store import DatasetStore
from tests.conftest import ROOT, cli_command, cli_env, make_recipe

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")
LABELS = ROOT / "recipes" / "labels" / "quickstart.jsonl"


def _quickstart(tmp_path: Path) -> Path:
    """The shipped quickstart with its judges as they are, one small batch of short generations."""
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    recipe["seeds"]["path"] = str(ROOT / "recipes" / recipe["seeds"]["path"])
    suite = json.loads((ROOT / "recipes" / recipe["validation"]["suite"]).read_text())
    # short generations, every row past the judge: gate on structure, not on the 135M model's mean score
    suite["expectations"] = [e for e in suite["expectations"] if e["type"] != "expect_column_mean_to_be_between"]
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    recipe["validation"] = {"suite": str(tmp_path / "suite.json"), "on_failure": "quarantine"}
    recipe["batches"] = {"size": 4, "count": 1}
    recipe["generation"]["sampling"]["max_tokens"] = 48
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_calibrate_writes_a_report_the_per_row_scores_reproduce_and_the_next_card_cites_it(
        tmp_path, prefect_api_url, ray_cluster):
    recipe, store = _quickstart(tmp_path), tmp_path / "store"
    labels = tmp_path / "labels.jsonl"  # every third row of the shipped set: 34 good, 6-7 of each bad kind
    labels.write_text("".join(LABELS.read_text(encoding="utf-8").splitlines(keepends=True)[::3]), encoding="utf-8")
    done = subprocess.run(cli_command("calibrate", str(recipe), "--labels", str(labels), "--store", str(store),
                                      "--json"), env=cli_env(prefect_api_url, ray_cluster),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    folder = Path(report["folder"])
    assert folder.parent == store / "quickstart" / "_calibration" and folder.name == report["fingerprint"]
    for png in ("roc.png", "calibration.png"):
        data = (folder / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert json.loads((folder / "report.json").read_text())["auc"] == report["auc"]

    rows = pq.read_table(folder / "scores.parquet").to_pylist()
    assert len(rows) == report["labels"]["rows"] == 74 and report["unreadable"] == 0
    assert report["labels"]["origins"] == {"constructed": 74} and set(report["by_origin"]) == {"constructed"}
    low, high = report["auc_interval"]
    assert low < report["auc"] < high and report["by_origin"]["constructed"]["auc"] == report["auc"]
    good, scores = [r["good"] for r in rows], [r["score"] for r in rows]
    assert report["auc"] == pytest.approx(roc_auc_score(good, scores))
    threshold = report["at_recipe_threshold"]["threshold"]
    assert report["at_recipe_threshold"]["kappa"] == pytest.approx(
        cohen_kappa_score(good, [s >= threshold for s in scores]))
    wanted = report["threshold_for_target_precision"]
    precise = [t for t in sorted(set(scores))
               if sum(g for g, s in zip(good, scores, strict=True) if s >= t) >= 0.8 * sum(s >= t for s in scores)]
    assert wanted["threshold"] == pytest.approx(precise[0])
    for judge in ("smollm2", "relevance", "form"):  # every judge of the panel measured on its own
        assert report["auc_per_judge"][judge] == pytest.approx(
            roc_auc_score(good, [json.loads(r["judges"])[judge] for r in rows]))
    assert set(report["auc_per_kind"]) == {"off_topic", "different_question", "truncated", "changed_fact",
                                           "repetition", "refusal"}
    assert report["auc"] >= 0.80  # the shipped default judge on the shipped (constructed) set

    # publish with another threshold (short generations are cut off, so they score low): the
    # threshold is not part of the fingerprint, the version still cites the same judges' calibration
    changed = yaml.safe_load(recipe.read_text())
    changed["grading"]["threshold"] = 0.0
    recipe.write_text(yaml.safe_dump(changed))
    from flows.factory import factory_flow

    factory_flow(recipe_path=str(recipe), store=str(store))
    [version] = DatasetStore(store / "quickstart").versions()
    cited = version.metadata.judging.calibration
    assert cited.auc == report["auc"] and cited.fingerprint == report["fingerprint"]
    assert cited.threshold_provenance == (f"set in the recipe; calibrate suggests {wanted['threshold']:.4g} "
                                          "for precision >= 0.8")
    assert cited.recall == 1.0  # at threshold 0 every good labelled row is accepted
    card = (store / "quickstart" / "_cards" / "v1" / "README.md").read_text()
    assert f"| judge ROC-AUC | {report['auc']:.4g} |" in card
    assert cited.by_origin["constructed"].rows == 74 and cited.real is None
    assert (f"not measured on real outputs; measured on constructed rows only: AUC {report['auc']:.4g}" in card
            and "a person would see at" not in card)
    assert version.metadata.judging.bias.self_judges == ["smollm2"]


def test_a_panel_of_two_judges_scores_every_row_and_a_suite_gates_on_their_agreement(tmp_path):
    suite = json.loads((ROOT / "expectations" / "quickstart.json").read_text())
    suite["expectations"] = [e for e in suite["expectations"] if e["type"] != "expect_column_mean_to_be_between"]
    suite["expectations"].append({"type": "expect_column_min_to_be_between", "kwargs": {
        "column": "batch_judge_agreement", "min_value": 1.0, "strict_min": True}})  # above 1.0: never
    recipe = make_recipe(tmp_path, suite=suite, batches__count=1, grading__aggregate="min", grading__judges=[
        {"name": "smollm2", "method": "logprobs"}, {"name": "relevance", "method": "relevance"}])
    from flows.factory import factory_flow

    with pytest.raises(NothingToPublishError):
        factory_flow(recipe_path=str(recipe), store=str(tmp_path / "store"))
    kept = DatasetStore(tmp_path / "store" / "tiny").read_quarantine().to_pylist()
    gated = [r for r in kept if r["stage"] == "validate"]
    assert gated and all("batch_judge_agreement" in r["reason"] for r in gated)
    for record in gated:
        row = json.loads(record["row"])
        scores = json.loads(row["scores"])
        assert set(scores) == {"smollm2", "relevance"}
        assert set(scores["smollm2"]) == {"score", "accuracy", "clarity"} and set(scores["relevance"]) == {
            "score", "relevance"}
        assert row["score"] == pytest.approx(min(scores["smollm2"]["score"], scores["relevance"]["score"]))
        assert row["batch_judge_agreement"] is not None and row["batch_judge_agreement"] <= 1.0
