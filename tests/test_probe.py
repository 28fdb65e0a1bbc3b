"""`synthfactory probe`: fine-tune the bundled SmolLM2 on a version and measure base vs tuned.

Versions are published directly with DatasetStore (a full run is minutes): v1 holds the labelled
set's good answers (the dev half of recipes/labels/quickstart_real_*), v2 the same answers with
their words shuffled (corrupted), v3 one real row. A version's export is the dataset as of that
version (v2's holds v1's rows too), as `load_dataset_version` and `export` give it. The held-out
good answers (the test half) are what the probe's `good_answers` perplexity is measured on.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

from synthfactory.cli import main
from synthfactory.model.lineage import ROW_SCHEMA, row_id_for
from synthfactory.model.metadata import VersionMetadata
from synthfactory.model.probe import EvalResult, ProbeRecord, probe_fingerprint, read_probes, write_probe
from synthfactory.probe.evalsets import LABELS_DIR, good_answers_eval, labelled_file
from synthfactory.probe.evaluate import ItemLoss, paired_bootstrap, perplexity
from synthfactory.store import DatasetStore

SYSTEM = "You are a patient teacher who explains things clearly and accurately."
STEPS = "4"
REAL_ITEMS = "4"


def _good_dev_rows() -> list[dict]:
    rows = [json.loads(line) for line in (LABELS_DIR / "quickstart_real_dev.jsonl").read_text().splitlines()]
    return [r for r in rows if r["label"] == "good"]


def _shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def _row(version: int, prompt: str, text: str, source: str = "synthetic") -> dict:
    return {"id": row_id_for(prompt, text), "seed_id": f"s{version}", "source": source, "generation_depth": 1,
            "prompt": prompt if source != "real" else None, "text": text, "run_id": f"run{version}",
            "batch_id": "b1", "version": version, "batch_index": 0, "created_at": datetime.now(timezone.utc)}


def _meta(version: int) -> VersionMetadata:
    return VersionMetadata(version=version, run_id=f"run{version}", dataset="quickstart", method="text",
                           generator_model="smollm2-135m-instruct",
                           recipe={"name": "quickstart", "generation": {"system_prompt": SYSTEM}})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetStore:
    store = DatasetStore(tmp_path_factory.mktemp("probe") / "store" / "quickstart")
    good = _good_dev_rows()
    rng = random.Random(7)
    store.publish([_row(1, r["prompt"], r["text"]) for r in good], _meta(1), ROW_SCHEMA)
    store.publish([_row(2, r["prompt"], _shuffled(r["text"], rng)) for r in good], _meta(2), ROW_SCHEMA)
    store.publish([_row(3, "", "Only real text here, written by a person, without any prompt.", "real")], _meta(3),
                  ROW_SCHEMA)
    return store


def _probe_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["probe", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- fast, no model --------------------------------------------------------------------------

def test_paired_bootstrap_is_of_the_difference_on_the_same_items():
    base = [ItemLoss(nll=10.0 + i, tokens=10) for i in range(20)]
    same = paired_bootstrap(base, base)
    assert same["delta"] == 0 and same["delta_interval"] == [0.0, 0.0]
    lower = paired_bootstrap(base, [ItemLoss(x.nll - 2.0, x.tokens) for x in base])
    assert lower["delta"] < 0 and lower["delta_interval"][1] < 0 and lower["relative_interval"][1] < 0
    assert lower["base"] == pytest.approx(perplexity(base)) and lower["items"] == 20 and lower["tokens"] == 200
    noisy = paired_bootstrap(base, [ItemLoss(x.nll + (1.0 if i % 2 else -1.0), x.tokens) for i, x in enumerate(base)])
    assert noisy["delta_interval"][0] < 0 < noisy["delta_interval"][1]


def test_a_probe_record_is_stored_beside_the_dataset_and_read_back(dataset: DatasetStore):
    key = probe_fingerprint("base", "sft", 4, None, 0, True, 5e-4, 2, {"good_answers": "k"})
    assert key == probe_fingerprint("base", "sft", 4, None, 0, True, 5e-4, 2, {"good_answers": "k"})
    assert key != probe_fingerprint("base", "sft", 4, None, 1, True, 5e-4, 2, {"good_answers": "k"})
    record = ProbeRecord(fingerprint=key, dataset="quickstart", version=3, base_model="m", base_key="base",
                         layout="sft", rows=1, evals=[EvalResult(name="good_answers", base=2.0, tuned=1.5, delta=-0.5)])
    place = write_probe(dataset, record)
    assert place.uri.endswith(f"_probes/v3/{key}.json")
    assert read_probes(dataset, 3) == [record] and read_probes(dataset, 99) == []
    assert "good_answers perplexity 2 -> 1.5" in record.summary()
    place.rm()


def test_the_good_answers_set_is_the_held_out_labelled_half():
    assert labelled_file("quickstart").name == "quickstart_real_test.jsonl"
    assert labelled_file("quickstart_learned").name == "quickstart_real_test.jsonl"
    assert labelled_file("math") is None
    evalset = good_answers_eval("quickstart", SYSTEM)
    test_good = [json.loads(x) for x in (LABELS_DIR / "quickstart_real_test.jsonl").read_text().splitlines()]
    assert len(evalset) == sum(r["label"] == "good" for r in test_good) > 0
    assert evalset.chats[0][0] == {"role": "system", "content": SYSTEM}
    trained = {r["text"] for r in _good_dev_rows()}
    assert not trained & {c[-1]["content"] for c in evalset.chats}  # what v1 trains on is not evaluated


def test_the_real_text_split_is_never_read_by_a_recipe():
    from synthfactory.errors import RecipeError
    from synthfactory.inputs.corpus import corpus_file, held_out_paragraphs, is_held_out
    from synthfactory.inputs.readers import read_texts

    assert sum(is_held_out(f"paragraph {i}") for i in range(3200)) in range(150, 250)  # about 1 in 16
    try:
        held = held_out_paragraphs()
    except RecipeError as exc:
        pytest.skip(str(exc))
    seen = set(read_texts(corpus_file("python-docs", "test"), "text"))
    assert len(held) > 100 and not seen & set(held)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "budget must be above 0"),
    (["--max-tokens", "0"], "budget must be above 0"),
    (["--model", "no-such-model"], "'no-such-model' is neither a bundled model"),
    (["--version", "1"], "v1: no rows in the messages (chats with an assistant answer) layout"),
    (["--version", "9"], "no version 9; versions are [1, 2, 3]"),
])
def test_bad_input_is_one_line_and_exit_2(dataset: DatasetStore, capsys: pytest.CaptureFixture, args, message):
    uri = dataset.uri
    if "layout" in message:  # a version's export is its whole snapshot: a dataset of real rows only
        real_only = DatasetStore(f"{dataset.uri}_real_only")
        if not real_only.exists():
            real_only.publish([_row(1, "", "Only real text here, written by a person, without any prompt.", "real")],
                              _meta(1), ROW_SCHEMA)
        uri = real_only.uri
    code, out, err = _probe_cli(capsys, uri, *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- the real model (heavy: run under the shared lock) ---------------------------------------

@pytest.fixture(scope="module")
def probes(dataset: DatasetStore) -> dict[str, ProbeRecord]:
    """Four probes of 4 steps each: v1 twice with seed 0 (once through the CLI), v1 with seed 1 (the
    run-to-run noise), v2 (corrupted) with seed 0."""
    from synthfactory.probe.run import probe_version

    common = {"steps": int(STEPS), "real_items": int(REAL_ITEMS)}
    code = main(["probe", dataset.uri, "--version", "1", "--steps", STEPS, "--seed", "0", "--real-items", REAL_ITEMS,
                 "--json"])
    assert code == 0
    first = read_probes(dataset, 1)[-1]
    return {"cli": first,
            "again": probe_version(dataset.uri, 1, seed=0, card=False, **common),
            "seed1": probe_version(dataset.uri, 1, seed=1, card=False, **common),
            "corrupted": probe_version(dataset.uri, 2, seed=0, **common)}


def test_a_probe_records_its_metrics_beside_the_dataset_and_in_the_card(dataset: DatasetStore, probes):
    record = probes["cli"]
    assert record.version == 1 and record.layout == "sft" and record.rows == len(_good_dev_rows())
    assert record.steps == int(STEPS) and record.tokens > 0 and record.wall_seconds > record.train_seconds > 0
    good = record.eval("good_answers")
    assert good.items > 0 and good.base > 1 and good.tuned > 1 and good.delta_interval[0] <= good.delta
    card = dataset.root.child("_cards", "v1", "README.md").read_text()
    assert "## Ablation (probe fine-tune)" in card and f"Probe `{record.fingerprint}`" in card
    assert f"{record.steps} steps, {record.tokens} training tokens" in card and "good_answers" in card
    assert (record.eval("real_text") is not None) or ("real_text" in record.skipped and "not measured" in card)


def test_the_same_probe_again_gives_the_same_numbers(probes):
    a, b = probes["cli"], probes["again"]
    assert a.fingerprint == b.fingerprint and a.tokens == b.tokens
    assert [e.model_dump() for e in a.evals] == [e.model_dump() for e in b.evals]
    assert probes["seed1"].fingerprint != a.fingerprint


def test_good_rows_lower_good_answer_perplexity_and_corrupted_rows_raise_it(dataset: DatasetStore, probes):
    good = probes["cli"].eval("good_answers").relative
    noise = abs(good - probes["seed1"].eval("good_answers").relative)  # run to run: another seed, same data
    corrupted = probes["corrupted"].eval("good_answers").relative
    assert good < -noise, (good, noise)
    assert corrupted > noise, (corrupted, noise)
    # v2's card plots the same probe on v1 and v2 (the corrupted probe wrote it after v1's CLI probe)
    card = dataset.root.child("_cards", "v2", "README.md").read_text()
    assert "probe_across_versions.png" in card
    assert dataset.root.child("_cards", "v2", "probe_across_versions.png").exists()
