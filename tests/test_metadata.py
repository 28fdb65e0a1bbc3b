"""The typed version metadata against what earlier code committed: every reader (store, card,
report, CLI `versions`, diff, run summary) takes versions written before the model existed, with
defaults for what they lack and their unknown keys kept; cost is formatted by one function.

Fast: Delta commits written straight with `deltalake` (as the older code did), no engine, no
Ray, no Prefect.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow as pa
import pytest

from synthfactory.errors import UserError
from synthfactory.model.cost import Cost, money_text
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.model.metadata import VersionMetadata
from synthfactory.publish.card import dataset_card, write_card
from synthfactory.publish.hub import diff_versions
from synthfactory.publish.report import rejection_table, run_report_markdown
from synthfactory.run.results import SUMMARY_FIELDS, run_summary
from synthfactory.store import METADATA_KEY, DatasetStore

# A real commit of the code before the model (c6c96d3: a 64-item `instruct` run of the bundled model).
C6C96D3 = json.loads((Path(__file__).parent / "fixtures" / "metadata_c6c96d3.json").read_text())

# The first core factory (86a4e58: `results.commit_metadata` + the flow's `extra`): no recipe, no
# dataset_uri, no method, token counts at the top level, a cost block of three numbers.
FIRST_CORE = {
    "version": 1, "run_id": "tiny-v1-0a1b2c3d", "recipe_hash": "0a1b2c3d4e5f6a7b", "dataset": "tiny",
    "generator_model": "smollm2-135m-instruct", "judge_model": "smollm2-135m-instruct",
    "prompt_template_hash": "1234abcd1234abcd", "generated": 4, "accepted": 3, "rejected": 1, "quarantined": 0,
    "seeds_quarantined": 0, "batches": 1, "batches_passed": 1, "batches_quarantined": 0, "prompt_tokens": 120,
    "completion_tokens": 80, "engine_seconds": 2.5, "reasons": {"below_threshold": 1}, "acceptance_rate": 0.75,
    "mean_score": 0.71, "validation": {"b0": "passed"},
    "cost": {"prompt_tokens": 120, "completion_tokens": 80, "engine_seconds": 2.5},
    "prefect_flow_run_id": "5b0c6f8e-0000-4000-8000-000000000001", "batches_resumed": 0, "engine_requests": 8,
    "engine_busy_seconds": 2.5, "first_batch_seconds": 9.1, "suite": "tiny",
}

# Collapse resistance (505df97): judges, panel bias, quality with tails, seeds from versions, a
# priced card; no money, no per-row cost, no stop or budget; plus a key no code of ours wrote.
COLLAPSE = {
    **{k: v for k, v in FIRST_CORE.items() if k not in ("version", "run_id")},
    "version": 2, "run_id": "tiny-v2-0a1b2c3d", "dataset_uri": "/data/store/tiny", "real_published": 1,
    "seeds_recycled": 0, "seed_versions": [1], "seed_real_share": 0.5,
    "validation": {"b0": "passed", "b1": "quarantined"},
    "validation_failures": {"b1": ["expect_column_values_to_not_be_null"]},
    "data_docs": {"b1": "file:///data/store/tiny/_data_docs/b1.html"},
    "score_histogram": {"0.0-0.2": 0, "0.2-0.4": 0, "0.4-0.6": 1, "0.6-0.8": 2, "0.8-1.0": 0},
    "engine_nodes": ["node-a"], "engine_replicas": 2, "engine_batches_retried": 0, "engines_ready_seconds": 3.2,
    "method": "text", "judge_calibration": {
        "fingerprint": "f00d", "path": "/data/store/tiny/_calibration/f00d", "created": "2026-11-20T10:00:00+00:00",
        "labels": {"file": "labels.jsonl", "sha256": "ab12", "rows": 221, "good": 120, "bad": 101}, "auc": 0.888,
        "threshold": 0.74, "threshold_provenance": "set in the recipe", "precision": 0.8, "recall": 0.99,
        "kappa": 0.5, "target_precision": 0.8, "suggested_threshold": 0.74, "verbosity_spearman": 0.1},
    "judge_bias": {"graded_rows": 4, "verbosity_spearman": 0.2, "self_preference": -0.05, "self_judges": ["smollm2"],
                   "other_judges": ["relevance"], "position_bias": None, "order_consistency": None, "pairs_checked": 0},
    "judge_agreement": 0.41,
    "judges": [{"name": "smollm2", "method": "json", "weight": 0.0, "model": "smollm2-135m-instruct"},
               {"name": "relevance", "method": "relevance", "weight": 1.0, "model": "all-MiniLM-L6-v2"}],
    "quality": {"rows": 4, "near_dup_rate": 0.0, "distinct_1": 0.5, "distinct_2": 0.8, "compression_ratio": 0.4,
                "real_share": 0.25, "max_generation_depth": 2, "rare_word_share": 0.1, "vocab_coverage": 0.2,
                "a_metric_from_the_future": 7.0},
    "recipe": {"name": "tiny", "card": {"license": "apache-2.0", "price_per_gpu_hour": 3.6, "currency": "EUR"},
               "generation": {"engine": "llamacpp", "method": "text", "prompt_template": "Explain {{ topic }}."},
               "grading": {"threshold": 0.74, "judges": [{"name": "smollm2"}, {"name": "relevance"}]}},
    "a_key_no_code_of_ours_wrote": {"kept": True},
}

OLDER = {"first core (86a4e58)": FIRST_CORE, "collapse (505df97)": COLLAPSE, "c6c96d3 (real commit)": C6C96D3}


@pytest.mark.parametrize("written", OLDER.values(), ids=OLDER.keys())
def test_metadata_older_code_wrote_parses_and_keeps_every_key(written):
    meta = VersionMetadata.model_validate(copy.deepcopy(written))
    assert (meta.totals.generated, meta.totals.accepted) == (written["generated"], written["accepted"])
    assert meta.gate.outcomes == written["validation"] and meta.gate.suite == written["suite"]
    assert meta.engines.requests == written["engine_requests"]
    assert meta.cost.tokens == written["cost"]["prompt_tokens"] + written["cost"]["completion_tokens"]
    commit = meta.as_commit()
    for key, value in written.items():  # every key comes back as it was written (cost: with more, below)
        if key != "cost":
            assert commit[key] == value, key
    assert {k: commit["cost"][k] for k in written["cost"]} == written["cost"]
    assert VersionMetadata.model_validate(json.loads(json.dumps(commit))) == meta  # and round-trips


def test_what_older_versions_lack_gets_defaults_and_older_money_is_priced_from_their_card():
    first = VersionMetadata.model_validate(FIRST_CORE)
    assert first.method == "text" and first.published and first.recipe == {} and first.dataset_uri is None
    assert first.stop.stopped is None and first.stop.budget is None and first.judging.judges == []
    assert first.quality is None and first.cost.money is None and first.cost.per_accepted_row is None
    assert first.stop.sentence(first.totals.batches).startswith("Not recorded")
    assert first.model_extra == {"prompt_tokens": 120, "completion_tokens": 80, "engine_seconds": 2.5}

    collapse = VersionMetadata.model_validate(COLLAPSE)
    assert collapse.cost.money == pytest.approx(3.6 * 2.5 / 3600) and collapse.cost.currency == "EUR"
    assert collapse.judging.calibration.labels.rows == 221 and collapse.judging.bias.self_judges == ["smollm2"]
    assert collapse.judging.judges[0].weight == 0.0 and collapse.gate.quarantined == ["b1"]
    assert collapse.quality.measured()["a_metric_from_the_future"] == 7.0
    assert "vendi_score" not in collapse.quality.measured()  # not measured: absent, not null
    assert collapse.model_extra["a_key_no_code_of_ours_wrote"] == {"kept": True}

    real = VersionMetadata.model_validate(C6C96D3)
    assert real.cost.money is None and real.cost.per_accepted_row.tokens == 820.173  # recorded null stays null
    assert real.stop.sentence(real.totals.batches) == ("`stopped: complete`: every planned batch ran; "
                                                       "8 of 8 planned batches ran.")


def test_a_new_commit_holds_every_key_the_code_before_the_model_wrote():
    meta = VersionMetadata.model_validate(C6C96D3)
    assert set(C6C96D3) <= set(meta.as_commit())
    summary = run_summary(meta, 12.3456)
    assert summary["dataset"] == C6C96D3["dataset_uri"] and summary["seconds"] == 12.346
    assert ({k: summary[k] for k in SUMMARY_FIELDS if k in C6C96D3}
            == {k: C6C96D3[k] for k in SUMMARY_FIELDS if k in C6C96D3})


def _commit_as_older_code_did(uri: Path, written: dict) -> None:
    """A Delta append carrying `written` under the key older code used, exactly as it wrote it."""
    from deltalake import CommitProperties, write_deltalake

    rows = [{name: None for name in ROW_SCHEMA.names} | {"id": f"{written['version']}-{i}", "text": "t",
                                                         "version": written["version"]} for i in range(2)]
    write_deltalake(str(uri), pa.Table.from_pylist(rows, schema=ROW_SCHEMA), mode="append",
                    commit_properties=CommitProperties(custom_metadata={METADATA_KEY: json.dumps(written)}))


def test_every_reader_reads_versions_older_code_committed(tmp_path, capsys):
    from synthfactory.cli import main

    uri = tmp_path / "tiny"
    _commit_as_older_code_did(uri, FIRST_CORE)
    _commit_as_older_code_did(uri, COLLAPSE)
    infos = DatasetStore(uri).versions()
    assert [(v.version, v.rows) for v in infos] == [(1, 2), (2, 2)]
    first, collapse = (v.metadata for v in infos)
    assert isinstance(first, VersionMetadata) and collapse.engines.replicas == 2

    card = dataset_card(collapse, 4, infos[:1])
    assert "| generated | 4 |" in card and "| cost | 0.0025 EUR |" in card and "| judge ROC-AUC | 0.888 |" in card
    assert "Not recorded (a version published before runs recorded why they stopped)." in card
    assert "seeds from versions 1 (50% of them real)" in card
    report = run_report_markdown(first)
    assert "| 4 | 3 | 1 | 0 | 75.0% | 0 | 0 |" in report and "no calibration on record" in report
    assert "n/a (no price in the recipe's card)" in report
    assert rejection_table(collapse)[0] == {"kind": "quarantined batch", "what": "b1", "rows": None,
                                            "detail": "expect_column_values_to_not_be_null",
                                            "data_docs": "file:///data/store/tiny/_data_docs/b1.html"}

    written = write_card(DatasetStore(uri), 2).read_text()  # the card with its plots, as export writes it
    assert "| parent versions | seeds from versions 1 (50% of them real), tiny v1 |" in written

    diff = diff_versions(uri, 1, 2)
    assert diff["metrics"]["accepted"] == {"a": 3, "b": 3, "delta": 0}
    assert diff["metrics"]["quality.rows"] == {"a": None, "b": 4, "delta": None}

    assert main(["versions", str(uri), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["money"] for r in listed] == [None, pytest.approx(0.0025)]  # priced from the older card
    assert listed[1]["currency"] == "EUR" and listed[0]["stopped"] is None
    assert main(["versions", str(uri)]) == 0
    table = capsys.readouterr().out
    assert "tiny-v2-0a1b2c3d" in table and "0.0025" in table


def test_metadata_that_does_not_parse_is_one_line_naming_the_version(tmp_path):
    uri = tmp_path / "tiny"
    _commit_as_older_code_did(uri, {**FIRST_CORE, "generated": "many"})
    with pytest.raises(UserError, match=r"metadata of Delta version 0 does not parse \(generated: ") as caught:
        DatasetStore(uri).versions()
    assert "\n" not in str(caught.value)


def test_cost_is_formatted_by_one_function():
    cost = Cost.model_validate(C6C96D3["cost"])
    assert cost.line() == ("42,649 tokens, 210 engine-seconds, no prices in the recipe's card; per accepted row "
                           "820.2 tokens, 4.038 engine-seconds")
    priced = Cost.model_validate({**C6C96D3["cost"], "money": 0.21, "currency": "EUR",
                                  "per_accepted_row": {"tokens": 820.173, "engine_seconds": 4.04, "money": 0.004}})
    assert priced.line().endswith(", 0.004000 EUR") and ", 0.2100 EUR; " in priced.line()
    assert priced.table()[2].endswith("| 210.0 | 0.210000 EUR |")
    assert money_text(None, "USD") == "n/a (no price in the recipe's card)" and money_text(1.5, "USD") == "1.5000 USD"
    assert money_text(None, None, missing="-") == "-"


def test_a_prefect_task_takes_the_record_as_a_parameter_unchanged():
    """Prefect walks a task's parameters (`visit_collection`, `dict(model)` on every nested model)
    before `report_task` runs: the record and its groups must come through that walk as they are."""
    from prefect.utilities.collections import visit_collection

    meta = VersionMetadata.model_validate(C6C96D3)
    assert visit_collection(meta, visit_fn=lambda x: x, return_data=True) is meta
    assert dict(meta.totals)["accepted"] == 52 and dict(meta.engines)["requests"] == 287


def test_a_prefect_task_takes_the_runs_facts_as_a_parameter_unchanged():
    """`publish_run` is a Prefect task under the flow: the run's facts come through the same walk."""
    from prefect.utilities.collections import visit_collection

    from synthfactory.model.facts import RunFacts

    meta = VersionMetadata.model_validate(C6C96D3)
    facts = RunFacts(dataset_uri="/data/store/tiny", suite="tiny", engines=meta.engines, stop=meta.stop,
                     recipe=meta.recipe, batches_resumed=1, first_batch_seconds=2.5, prefect_flow_run_id="f")
    assert visit_collection(facts, visit_fn=lambda x: x, return_data=True) == facts
