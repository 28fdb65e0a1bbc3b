"""Calibration's honesty, fast: intervals, labels by origin, a dataset's labels table read by the
shared contract (skips dropped and counted, the latest label of several labellers, their kappa),
and the card sentence that states what a person would see, or that it was not measured.

No engine, no Ray, no Prefect: graded rows are fixed scores; the labels table is a real Delta table.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from synthfactory.errors import UserError
from synthfactory.grading.calibration import (
    auc_interval,
    calibration_folder,
    latest_calibration,
    load_label_source,
    report_for,
    wilson_interval,
    write_calibration,
)
from synthfactory.model.metadata import Calibration, VersionMetadata
from synthfactory.publish.card import _grading_section, what_a_person_would_see
from synthfactory.publish.report import run_report_markdown
from synthfactory.recipe import load_recipe
from tests.conftest import make_recipe
from tests.test_metadata import COLLAPSE

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def labels_table(dataset: Path, labels: list[dict]) -> None:
    """A `_labels/` table as the shared contract lays it out (what `synthfactory label` writes)."""
    from deltalake import write_deltalake

    schema = pa.schema([("row_id", pa.string()), ("version", pa.int64()), ("table", pa.string()),
                        ("method", pa.string()), ("prompt", pa.string()), ("text", pa.string()),
                        ("score", pa.float64()), ("label", pa.string()), ("note", pa.string()),
                        ("labeller", pa.string()), ("labelled_at", pa.timestamp("us", tz="UTC")),
                        ("source", pa.string())])
    rows = [{"version": 1, "table": "published", "method": "text", "score": 0.5, "note": None, "source": "real",
             **label} for label in labels]
    write_deltalake(str(dataset / "_labels"), pa.Table.from_pylist(rows, schema=schema), mode="append")


def test_wilson_matches_the_published_example_and_the_auc_interval_is_reproducible_and_holds_the_auc():
    lo, hi = wilson_interval(81, 263)  # Newcombe (1998), Statistics in Medicine 17: 0.2553 to 0.3662
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 0) is None
    good = [i % 3 != 0 for i in range(60)]
    scores = [0.3 * g + (i * 37 % 11) / 11 for i, g in enumerate(good)]
    ci = auc_interval(good, scores)
    assert ci == auc_interval(good, scores) and ci[0] < roc_auc_score(good, scores) < ci[1] and ci[1] - ci[0] < 0.5
    assert auc_interval([True, True], [0.1, 0.2]) is None


def _graded(rows: list[tuple[str, str, bool, float]]) -> list[dict]:
    return [{"id": i, "origin": o, "good": g, "score": s, "kind": "good" if g else "bad", "text": "t" * (k + 1),
             "criteria": {}, "judges": {}, "error": None} for k, (i, o, g, s) in enumerate(rows)]


def test_report_measures_each_origin_on_its_own_with_counts_and_intervals_and_row_order_does_not_matter(tmp_path):
    grading = load_recipe(make_recipe(tmp_path, grading__threshold=0.5)).recipe.grading
    rows = ([(f"r{k}", "real", k < 4, 0.9 if k % 2 else 0.2) for k in range(16)]  # 4 good of 16: a poor judge
            + [(f"c{k}", "constructed", k < 10, 0.9 if k < 10 else 0.1) for k in range(20)])  # a perfect one
    (tmp_path / "labels.jsonl").write_text("{}\n")
    report = report_for(_graded(rows), grading, 0.8, tmp_path / "labels.jsonl", "tiny", [])
    again = report_for(_graded(rows[::-1]), grading, 0.8, tmp_path / "labels.jsonl", "tiny", [])
    assert report["auc_interval"] == again["auc_interval"] and report["by_origin"] == again["by_origin"]
    real, built = report["by_origin"]["real"], report["by_origin"]["constructed"]
    assert (real["rows"], real["good"], real["base_rate"]) == (16, 4, 0.25)
    assert (real["accepted"], real["true_positives"], real["precision"]) == (8, 2, 0.25)
    assert real["precision_interval"] == wilson_interval(2, 8) and real["recall_interval"] == wilson_interval(2, 4)
    assert built["auc"] == 1.0 and built["precision"] == 1.0 and built["rows"] == 20
    assert report["labels"]["origins"] == {"real": 16, "constructed": 20}
    at = report["at_recipe_threshold"]
    assert (at["accepted"], at["true_positives"]) == (18, 12) and at["precision_interval"] == wilson_interval(12, 18)


def _labels(rows: int = 6) -> list[dict]:
    return [{"row_id": f"row{k}", "prompt": f"Explain topic {k}.", "text": f"Answer {k}.", "labeller": "ann",
             "label": "good" if k % 2 else "bad", "labelled_at": T0 + timedelta(minutes=k)} for k in range(rows)]


def test_a_labels_table_gives_the_latest_label_per_row_drops_skips_and_reports_the_labellers_kappa(tmp_path):
    dataset = tmp_path / "store" / "tiny"
    first = _labels()
    labels_table(dataset, first)
    second = [{**label, "labeller": "bob", "labelled_at": label["labelled_at"] + timedelta(hours=1)}
              for label in first[:4]]
    second[0]["label"] = "good"  # bob disagrees on row0, later: his label is the row's
    second[3]["label"] = "skip"  # bob skipped row3: ann's label stands, the skip is counted
    labels_table(dataset, second + [{**first[5], "row_id": "row6", "label": "skip", "labeller": "bob"}])
    labels = load_label_source(dataset)
    got = {r["id"]: (r["good"], r["origin"]) for r in labels.rows}
    assert got == {"row0": (True, "real"), "row1": (True, "real"), "row2": (False, "real"), "row3": (True, "real"),
                   "row4": (False, "real"), "row5": (True, "real")}
    assert labels.source["kind"] == "table" and labels.source["skipped"] == 2
    [pair] = labels.source["agreement"]
    ann, bob = [False, True, False], [True, True, False]  # rows 0-2, the ones both labelled good or bad
    assert pair["labellers"] == ["ann", "bob"] and pair["rows"] == 3 and pair["disagreements"] == 1
    assert pair["kappa"] == pytest.approx(cohen_kappa_score(ann, bob))


def test_labels_are_a_file_or_a_labels_table_by_what_is_on_disk_and_anything_else_is_one_line(tmp_path):
    file = tmp_path / "labels.jsonl"
    file.write_text('{"prompt": "p", "text": "t", "label": "good", "origin": "real"}\n'
                    '{"prompt": "p", "text": "u", "label": "bad"}\n{"prompt": "p", "text": "v", "label": "bad", '
                    '"origin": "invented"}\n')
    labels = load_label_source(file)
    assert [r["origin"] for r in labels.rows] == ["real", "unknown"] and labels.source["kind"] == "file"
    assert [q.reason.split(":")[0] for q in labels.quarantined] == ["bad_origin"]
    (tmp_path / "store" / "empty").mkdir(parents=True)
    with pytest.raises(UserError, match="a folder without a labels table"):
        load_label_source(tmp_path / "store" / "empty")
    with pytest.raises(UserError, match="neither a JSONL/Parquet file nor a dataset"):
        load_label_source(tmp_path / "nothing-here")


def _meta(calibration: dict | None) -> VersionMetadata:
    written = copy.deepcopy(COLLAPSE)
    written["judge_calibration"] = calibration
    return VersionMetadata.model_validate(written)


def test_the_card_and_the_report_state_the_precision_a_person_would_see_or_that_it_was_not_measured(tmp_path):
    grading = load_recipe(make_recipe(tmp_path, grading__threshold=0.5)).recipe.grading
    rows = ([(f"r{k}", "real", k < 4, 0.9 if k % 2 else 0.2) for k in range(16)]
            + [(f"c{k}", "constructed", k < 10, 0.9 if k < 10 else 0.1) for k in range(20)])
    graded = _graded(rows)
    (tmp_path / "labels.jsonl").write_text("{}\n")
    report = report_for(graded, grading, 0.8, tmp_path / "labels.jsonl", "tiny", [])
    write_calibration(calibration_folder(str(tmp_path / "store" / "tiny"), grading), report, graded)
    cited = latest_calibration(str(tmp_path / "store" / "tiny"), grading)
    meta = _meta(cited)
    assert json.loads(json.dumps(meta.as_commit()))["judge_calibration"]["by_origin"]["real"]["rows"] == 16
    card = "\n".join(_grading_section(meta, meta.recipe["grading"]))
    lo, hi = wilson_interval(2, 8)
    assert (f"precision a person would see at threshold 0.5: 0.25 (95% CI {lo:.2f}-{hi:.2f}; 2 good of 8 accepted) "
            "on 16 labelled real rows, base rate 0.25; recall 0.50") in card
    assert "16 real, 20 constructed" in card and "not measured on real outputs" not in card
    assert "precision a person would see at threshold 0.5: 0.25" in run_report_markdown(meta)

    built_only = _graded(rows[16:])
    report = report_for(built_only, grading, 0.8, tmp_path / "labels.jsonl", "tiny", [])
    write_calibration(calibration_folder(str(tmp_path / "store" / "tiny"), grading), report, built_only)
    meta = _meta(latest_calibration(str(tmp_path / "store" / "tiny"), grading))
    card = "\n".join(_grading_section(meta, meta.recipe["grading"]))
    assert ("not measured on real outputs; measured on constructed rows only: AUC 1 (95% CI 1.00-1.00, 20 rows) "
            "— not the rows you get") in card and "a person would see at" not in card

    older = _meta(COLLAPSE["judge_calibration"])  # a calibration written before origins: unknown, not real
    assert what_a_person_would_see(older.judging.calibration) == "not measured on real outputs"
    assert what_a_person_would_see(None) == "not measured on real outputs (no calibration of these judges on record)"
    assert "not measured on real outputs" in "\n".join(_grading_section(_meta(None), older.recipe["grading"]))
    assert Calibration.model_validate(cited).real.precision == 0.25


def test_a_labelled_row_is_graded_on_the_pair_the_table_keeps_and_a_preference_pair_is_quarantined_not_dropped(
        tmp_path):
    """The table keeps the (instruction, response) the run's judges graded (labels.sample); calibrate
    grades exactly that, whatever the prompt looks like."""
    dataset = tmp_path / "store" / "chat"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Explain tides."},
                {"role": "assistant", "content": "The moon pulls."}, {"role": "user", "content": "And the sun?"}]
    labels_table(dataset, [
        {"row_id": "chat", "prompt": json.dumps(messages), "text": "It pulls too.", "label": "good",
         "labeller": "ann", "labelled_at": T0},
        {"row_id": "plain", "prompt": "Explain rain.", "text": "Clouds.", "label": "bad", "labeller": "ann",
         "labelled_at": T0},
        {"row_id": "pair", "prompt": "Explain snow.", "text": json.dumps({"chosen": "a", "rejected": "b"}),
         "label": "good", "labeller": "ann", "labelled_at": T0}])
    labels = load_label_source(dataset)
    assert {r["id"]: r["prompt"] for r in labels.rows} == {"chat": json.dumps(messages), "plain": "Explain rain."}
    assert [(q.location, q.reason.split(":")[0]) for q in labels.quarantined] == [("_labels:pair", "preference_pair")]


def test_a_learned_judge_voting_alone_puts_its_cross_validated_precision_on_the_card(tmp_path):
    """Without a calibration, a version graded by one learned judge states what its out-of-fold
    scores give at the version's threshold: the estimate of the precision a person would see."""
    from synthfactory.grading.learned import CALIBRATION_DIR, CV_FILE, LEARNED_DIR, judges_fingerprint, stored_summary
    from synthfactory.model.metadata import JudgeInfo

    grading = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "quickstart_learned.yaml").recipe.grading
    folder = tmp_path / CALIBRATION_DIR / judges_fingerprint(grading) / LEARNED_DIR / "abc123"
    folder.mkdir(parents=True)
    oof = [0.9, 0.8, 0.05, 0.2, 0.01, 0.3, 0.02, 0.6, 0.03, 0.04]  # threshold 0.091377 accepts 5
    good = [True, True, False, False, False, True, False, True, False, False]
    (folder / CV_FILE).write_text(json.dumps({"labels": {"path": "l.jsonl", "origins": ["real"]}, "rows": 10,
                                              "good": 4, "auc": 0.96, "groups": ["generator"],
                                              "oof_scores": oof, "oof_good": good}))
    summary = stored_summary(str(tmp_path), grading, "learned:abc123")
    assert summary["at_threshold"]["accepted"] == 5 and summary["at_threshold"]["true_positives"] == 4
    assert stored_summary(str(tmp_path), grading, "learned:elsewhere") is None
    assert stored_summary(str(tmp_path), grading, "all-MiniLM-L6-v2") is None
    meta = _meta(None)
    judges = [JudgeInfo(name="form", method="form", weight=0),
              JudgeInfo.model_validate({"name": "learned", "method": "learned", "weight": 1, "model": "learned:abc123",
                                        "cross_validated": summary})]
    meta = meta.model_copy(update={"judging": meta.judging.model_copy(update={"judges": judges})})
    card = "\n".join(_grading_section(meta, {**grading.model_dump(mode="json")}))
    lo, hi = wilson_interval(4, 5)
    assert ("precision a person would see at threshold 0.091377, estimated by the learned judge's cross-validation: "
            f"0.8 (95% CI {lo:.2f}-{hi:.2f}; 4 good of 5 accepted) on 10 labelled real rows, base rate 0.4") in card
    assert "cross-validated on 10 labelled real rows of `l.jsonl` (4 good), out of fold: ROC-AUC 0.96" in card
    observer = [judges[0], judges[1].model_copy(update={"weight": 0.0}),
                JudgeInfo(name="relevance", method="relevance")]
    meta = meta.model_copy(update={"judging": meta.judging.model_copy(update={"judges": observer})})
    card = "\n".join(_grading_section(meta, {**grading.model_dump(mode="json")}))
    assert "not measured on real outputs" in card and "estimated by the learned judge" not in card


def test_a_calibration_partly_on_the_learned_judges_training_rows_is_no_precision_a_person_would_see(tmp_path):
    """calibrate on labels that trained the learned judge: the card says it is partly a training fit;
    and a version whose learned judge was retrained since (new labels) cites no calibration at all."""
    from synthfactory.run.commit import judging_metadata
    from synthfactory.store import DatasetStore

    grading = load_recipe(make_recipe(tmp_path, grading__threshold=0.5)).recipe.grading
    graded = _graded([(f"r{k}", "real", k < 4, 0.9 if k % 2 else 0.2) for k in range(16)])
    (tmp_path / "labels.jsonl").write_text("{}\n")
    learned = [{"judge": "learned", "fingerprint": "old123", "auc": 0.71, "training_overlap": 6}]
    report = report_for(graded, grading, 0.8, tmp_path / "labels.jsonl", "tiny", [], learned=learned)
    uri = str(tmp_path / "store" / "tiny")
    write_calibration(calibration_folder(uri, grading), report, graded)
    cited = latest_calibration(uri, grading)
    assert cited["learned"] == learned
    said = what_a_person_would_see(_meta(cited).judging.calibration)
    assert said.startswith("not measured on real outputs it was not trained on: 6 of the calibration's labelled rows "
                           "trained the learned judge `learned`") and "a person would see at" not in said
    loaded = load_recipe(make_recipe(tmp_path, grading__threshold=0.5))  # no learned judge now: another model
    assert judging_metadata(loaded.recipe, [], DatasetStore(uri)).calibration is None
