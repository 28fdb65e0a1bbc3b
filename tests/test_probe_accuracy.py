"""The probe's task accuracy (issue 26 (c)): a verified recipe's held-out seeds answered by the base
and the tuned model, checked by the recipe's verifiers.

The recipe here is a small copy of recipes/math.yaml (`tinymath`, five seeds) in a temporary recipes
folder; the published version has rows from two of its seeds, so three are held out.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from synthfactory.cli import main
from synthfactory.inputs.seeds import load_seeds
from synthfactory.model.lineage import ROW_SCHEMA, row_id_for
from synthfactory.model.metadata import VersionMetadata
from synthfactory.model.probe import EvalResult, ProbeRecord
from synthfactory.probe.evaluate import paired_accuracy
from synthfactory.probe.tasks import held_out, task_set, verify_answers
from synthfactory.publish.probe import probe_lines
from synthfactory.recipe import load_recipe
from synthfactory.store import DatasetStore

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [
    {"question": "Ana has 4 pens. Bo gives her 5 more pens. How many pens does Ana have now?", "answer": "9"},
    {"question": "Cy had 8 cards and gave away 2 of them. How many cards does Cy have left?", "answer": "6"},
    {"question": "Each box holds 4 eggs. Di has 3 boxes. How many eggs are there in all?", "answer": "12"},
    {"question": "Ed has 10 coins and spends 3 of them. How many coins does Ed have left?", "answer": "7"},
    {"question": "Fay reads 2 pages each day for 5 days. How many pages does she read?", "answer": "10"},
]
TRAINED = 2  # the version has rows from the first two seeds


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recipes folder holding `tinymath.yaml` (recipes/math.yaml with five seeds of its own)."""
    folder = tmp_path_factory.mktemp("recipes")
    raw = yaml.safe_load((ROOT / "recipes" / "math.yaml").read_text())
    raw.update(name="tinymath", seeds={**raw["seeds"], "path": "seeds/tinymath.jsonl"},
               validation={"suite": str(ROOT / "expectations" / "math.json")})
    (folder / "seeds").mkdir()
    (folder / "seeds" / "tinymath.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    (folder / "tinymath.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder


def _recorded(recipes: Path) -> dict:
    """The recipe as a run records it in the version's metadata."""
    return load_recipe(recipes / "tinymath.yaml").recipe.model_dump(mode="json")


def _seed_ids(recipes: Path) -> list[str]:
    loaded = load_recipe(recipes / "tinymath.yaml")
    return [s.seed_id for s in load_seeds(loaded.recipe.seeds, loaded.seeds_path).rows]


# -- fast, no model --------------------------------------------------------------------------

def test_held_out_seeds_are_those_the_version_has_no_row_from(recipes: Path):
    ids = _seed_ids(recipes)
    used = set(ids[:TRAINED])
    tasks, why = task_set(_recorded(recipes), used, items=8, recipes_dir=recipes)
    assert why is None and len(tasks) == len(SEEDS) - TRAINED
    assert {s.seed_id for s in tasks.seeds} == set(ids[TRAINED:])
    assert tasks.chats[0][0]["role"] == "system" and tasks.chats[0][0]["content"].startswith("You solve grade-school")
    assert {c[-1]["content"] for c in tasks.chats} == {s["question"] for s in SEEDS[TRAINED:]}  # "{{ question }}"
    assert tasks.max_new_tokens == 96  # the recipe's sampling.max_tokens (under the cap of 384)
    again, _ = task_set(_recorded(recipes), used, items=2, recipes_dir=recipes)
    assert [s.seed_id for s in again.seeds] == [s.seed_id for s in tasks.seeds][:2]  # same order, capped
    assert again.key != tasks.key


def test_task_accuracy_is_skipped_with_a_reason(recipes: Path):
    recorded = _recorded(recipes)
    assert task_set(recorded, set(), items=0, recipes_dir=recipes) == (None, None)  # off
    _, why = task_set(recorded, set(_seed_ids(recipes)), items=8, recipes_dir=recipes)
    assert "none is held out" in why
    _, why = task_set(recorded, set(), items=8, recipes_dir=recipes / "elsewhere")
    assert "no recipe file tinymath.yaml" in why
    _, why = task_set({**recorded, "verification": []}, set(), items=8, recipes_dir=recipes)
    assert "has no verification" in why


def test_held_out_order_does_not_depend_on_the_file_order():
    class Seed:
        def __init__(self, seed_id: str) -> None:
            self.seed_id = seed_id

    pairs = [(Seed(f"s{i}"), f"p{i}") for i in range(10)]
    first = held_out(pairs, {"s3"}, 4)
    assert [s.seed_id for s, _ in first] == [s.seed_id for s, _ in held_out(pairs[::-1], {"s3"}, 4)]
    assert len(first) == 4 and "s3" not in {s.seed_id for s, _ in first}


def test_answers_are_right_only_when_every_verifier_passes(recipes: Path):
    tasks, _ = task_set(_recorded(recipes), set(), items=8, recipes_dir=recipes)
    right = [f"The sum.\nAnswer: {s.fields['answer']}" for s in tasks.seeds]
    assert verify_answers(tasks, right) == [True] * len(tasks)
    wrong = ["Answer: 1000", "no final answer here", "Answer: 7 apples or 8", "", "Answer: \\boxed{"]
    assert verify_answers(tasks, wrong[:len(tasks)]) == [False] * len(tasks)


def test_code_answers_are_checked_by_the_recipe_tests_in_the_sandbox():
    from synthfactory.verify.sandbox import sandbox_kind

    kind, why = sandbox_kind()
    recorded = load_recipe(ROOT / "recipes" / "code.yaml").recipe.model_dump(mode="json")
    tasks, skipped = task_set(recorded, set(), items=1)
    if kind != "bubblewrap":  # the probe runs generated code only in bubblewrap: it says so and skips
        assert tasks is None and "bubblewrap" in skipped
        pytest.skip(f"no bubblewrap here: {why}")
    seed = tasks.seeds[0]
    assert tasks.chats[0][-1]["content"].startswith(f"```python\ndef {seed.fields['signature']}:")
    stub = f"```python\ndef {seed.fields['signature']}:\n    return None\n```"
    assert verify_answers(tasks, [stub]) == [False]
    spec = importlib.util.spec_from_file_location("make_code", ROOT / "recipes" / "seeds" / "make_code.py")
    make_code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_code)
    reference = next(ref for name, _, _, ref, _ in make_code.PROBLEMS if name == seed.fields["name"])
    assert verify_answers(tasks, [f"```python\n{reference}\n```"]) == [True]


def test_an_answer_that_makes_a_verifier_raise_is_wrong_and_counted(recipes: Path, monkeypatch):
    """Generated text is hostile: a verifier that raises on one answer fails that answer only, and the
    error is handed back (the probe logs it and records the count beside the accuracy)."""
    from synthfactory.run import plan
    from synthfactory.verify.base import Verdict

    class Fragile:
        def verify_many(self, claims):
            return [self.verify(c) for c in claims]

        def verify(self, claim):
            if "boom" in claim.response:
                raise ValueError("cannot parse")
            return Verdict(passed=True, reason="")

    tasks, _ = task_set(_recorded(recipes), set(), items=3, recipes_dir=recipes)
    monkeypatch.setattr(plan, "build_verifiers", lambda recipe: [("fragile", Fragile())])
    errors: list[str] = []
    assert verify_answers(tasks, ["Answer: 1", "boom", "Answer: 2"], errors) == [True, False, True]
    assert errors == ["item 1: fragile: ValueError: cannot parse"]
    record = EvalResult(name="t", metric="accuracy", items=3, base=2 / 3, tuned=1.0, right=[2, 3],
                        verifier_errors=[1, 0])
    lines = probe_lines(ProbeRecord(fingerprint="f", dataset="math", version=1, base_model="m", base_key="k",
                                    layout="sft", rows=3, learning_rate=5e-4, evals=[record]))
    row = next(line for line in lines if line.startswith("| t:"))
    assert "| 67% (2/3), 1 verifier error counted wrong | 100% (3/3) |" in row, row


def test_the_accuracy_interval_is_a_paired_bootstrap_over_items():
    same = paired_accuracy([True, False] * 5, [True, False] * 5)
    assert same["base"] == same["tuned"] == 0.5 and same["delta"] == 0 and same["delta_interval"] == [0.0, 0.0]
    better = paired_accuracy([False] * 10, [True] * 10)
    assert better["delta"] == 1.0 and better["delta_interval"] == [1.0, 1.0] and better["right"] == [0, 10]
    mixed = paired_accuracy([True, False] * 10, [False, True] * 10)
    assert mixed["delta"] == 0 and mixed["delta_interval"][0] < 0 < mixed["delta_interval"][1]
    assert paired_accuracy([True] * 4, [False] * 4, seed=3) == paired_accuracy([True] * 4, [False] * 4, seed=3)
    with pytest.raises(ValueError):
        paired_accuracy([True], [True, False])


def test_the_card_and_summary_show_accuracy_not_perplexity():
    accuracy = EvalResult(name="task_accuracy", description="share of 4 held-out seeds", metric="accuracy",
                          **{k: v for k, v in paired_accuracy([True, False, False, False],
                                                              [True, True, False, False]).items() if k != "metric"})
    record = ProbeRecord(fingerprint="f", dataset="math", version=1, base_model="m", base_key="k", layout="sft",
                         rows=3, learning_rate=5e-4, evals=[accuracy])
    summary = record.summary()
    assert "task_accuracy accuracy 25% -> 50% (+25 points [" in summary and "4 items)" in summary
    assert "perplexity" not in summary
    row = next(line for line in probe_lines(record) if line.startswith("| task_accuracy"))
    assert "| 25% (1/4) | 50% (2/4) | +25 points [" in row and row.endswith("| - |")


def test_negative_task_items_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    code = main(["probe", str(tmp_path / "store" / "math"), "--task-items", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "--task-items -1" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- the real model (heavy: run under the shared lock) ---------------------------------------

def _row(seed_id: str, question: str, answer: str) -> dict:
    text = f"The numbers give {answer}.\nAnswer: {answer}"
    return {"id": row_id_for(question, text), "seed_id": seed_id, "source": "synthetic", "generation_depth": 1,
            "prompt": question, "text": text, "run_id": "run1", "batch_id": "b1", "version": 1, "batch_index": 0,
            "created_at": datetime.now(timezone.utc)}


def test_a_probe_of_a_verified_recipe_records_task_accuracy(recipes: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    from synthfactory.probe import tasks
    from synthfactory.probe.run import probe_version

    monkeypatch.setattr(tasks, "RECIPES_DIR", recipes)
    recorded = _recorded(recipes)
    store = DatasetStore(tmp_path / "store" / "tinymath")
    ids = _seed_ids(recipes)
    rows = [_row(ids[i], SEEDS[i]["question"], SEEDS[i]["answer"]) for i in range(TRAINED)]
    store.publish(rows, VersionMetadata(version=1, run_id="run1", dataset="tinymath", method="text",
                                        generator_model="smollm2-135m-instruct", recipe=recorded), ROW_SCHEMA)
    record = probe_version(store.uri, 1, steps=1, task_items=2, real_items=0)
    accuracy = record.eval("task_accuracy")
    assert accuracy is not None and accuracy.metric == "accuracy" and accuracy.items == 2
    assert 0 <= accuracy.base <= 1 and 0 <= accuracy.tuned <= 1 and accuracy.delta == accuracy.tuned - accuracy.base
    assert "task_accuracy" not in record.skipped and "good_answers" in record.skipped
    card = store.root.child("_cards", "v1", "README.md").read_text()
    assert "| task_accuracy: share of 2 held-out seeds" in card and "(no row of this version came from them)" in card
    print(record.summary())
    # the task items are part of what the probe measures: another count is another probe (fingerprint);
    # a second probe of the same version with the same seed repeating its numbers: test_probe.py
    one, _ = task_set(recorded, set(ids[:TRAINED]), items=1, recipes_dir=recipes)
    two, _ = task_set(recorded, set(ids[:TRAINED]), items=2, recipes_dir=recipes)
    assert len(one) == 1 and one.key != two.key
