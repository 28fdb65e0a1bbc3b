"""`calibrate --labels STORE/NAME` (a dataset's `_labels/` table, as `synthfactory label` writes it)
and `--labels FILE` (the same labels exported to JSONL) give the same report numbers.

Real judges, cheap ones: a panel of `relevance` (MiniLM) and `form`; no LLM, so no Ray and no
Prefect; the CLI runs in this process so MiniLM loads once. A few rows of the shipped set.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from synthfactory.cli import main
from synthfactory.labels.table import append_labels
from tests.conftest import ROOT, make_recipe

PANEL = [{"name": "relevance", "method": "relevance"}, {"name": "form", "method": "form"}]
SAME = ("auc", "auc_interval", "auc_per_judge", "auc_per_criterion", "at_recipe_threshold", "by_origin",
        "threshold_for_target_precision", "deciles", "verbosity_spearman", "fingerprint", "unreadable")


def _shipped(n_good: int = 10, per_kind: int = 2) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / "recipes" / "labels" / "quickstart.jsonl").read_text().splitlines()]
    picked = [r for r in rows if r["kind"] == "good"][:n_good]
    for kind in sorted({r["kind"] for r in rows} - {"good"}):
        picked += [r for r in rows if r["kind"] == kind][:per_kind]
    return picked


def _calibrate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["calibrate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_calibrate_on_a_labels_table_and_on_the_same_labels_in_a_file_gives_the_same_numbers(tmp_path, capsys):
    recipe = make_recipe(tmp_path, grading__judges=PANEL, grading__threshold=0.6)
    store, rows = tmp_path / "store", _shipped()
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    labels = [{"row_id": r["id"], "version": 1, "table": "published", "method": "text", "prompt": r["prompt"],
               "text": r["text"], "score": None, "label": r["label"], "labeller": "ann",
               "labelled_at": t0 + timedelta(seconds=k)} for k, r in enumerate(rows)]
    labels.append({**labels[0], "row_id": "skipped-row", "label": "skip"})  # dropped and counted
    append_labels(store / "tiny", labels)
    exported = tmp_path / "exported.jsonl"
    exported.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"], "text": r["text"],
                                            "label": r["label"], "origin": "real"}) + "\n" for r in rows))

    code, out, err = _calibrate(capsys, str(recipe), "--labels", str(store / "tiny"), "--store", str(store), "--json")
    assert code == 0, err
    from_table = json.loads(out.strip().splitlines()[-1])
    code, out, err = _calibrate(capsys, str(recipe), "--labels", str(exported), "--store", str(store), "--json")
    assert code == 0, err
    from_file = json.loads(out.strip().splitlines()[-1])

    assert {k: from_table[k] for k in SAME} == {k: from_file[k] for k in SAME}
    assert from_table["labels"]["kind"] == "table" and from_table["labels"]["skipped"] == 1
    assert from_table["labels"]["rows"] == from_file["labels"]["rows"] == len(rows) == 22
    real = from_table["by_origin"]["real"]
    scores = {r["id"]: r["score"] for r in _scores(Path(from_table["folder"]))}
    good = [r["label"] == "good" for r in rows]
    assert real["auc"] == pytest.approx(roc_auc_score(good, [scores[r["id"]] for r in rows]))
    assert real["auc_interval"][0] <= real["auc"] <= real["auc_interval"][1]
    accepted = [scores[r["id"]] >= 0.6 for r in rows]
    assert real["accepted"] == sum(accepted)
    assert real["true_positives"] == sum(a and g for a, g in zip(accepted, good, strict=True))

    code, out, err = _calibrate(capsys, str(recipe), "--labels", str(store / "tiny"), "--store", str(store))
    assert code == 0, err
    assert f"on 22 labelled real rows (a model's outputs, labelled against a rubric): base rate {10 / 22:.4g}" in out
    assert "1 labels were skip (not counted)" in out and "95% CI" in out

    code, out, err = _calibrate(capsys, str(recipe), "--labels", str(store / "nothing"), "--store", str(store))
    assert code == 2 and err.strip() == (f"synthfactory: error: --labels {store / 'nothing'}: neither a JSONL/Parquet "
                                         "file nor a dataset STORE/NAME with labels")


def _scores(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(folder / "scores.parquet").to_pylist()
