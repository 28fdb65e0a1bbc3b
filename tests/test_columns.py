"""Declared columns: every part of a recipe's line declares the columns it adds, the published
schema is derived from the declarations, clashes are a RecipeError when the recipe loads, and a
row key nobody declared fails the run instead of being dropped. Whole runs use the stub engine
pool of test_driver (seconds, on the real GX suite and Delta table)."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa
import pytest

from synthfactory import load_dataset_version, registry
from synthfactory.errors import RecipeError
from synthfactory.model.batch import BatchState
from synthfactory.model.columns import Declared, UndeclaredColumnError, published_schema
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.quality.screens import Screen
from synthfactory.recipe import load_recipe
from synthfactory.recipe.columns import line_columns, recipe_schema
from synthfactory.registry import Entry, Registry
from synthfactory.run.results import published_rows
from tests.conftest import make_recipe
from tests.test_driver import FAST, StubPool, _drive, _suite


class ShoutScreen(Screen):
    """A test screen: the share of capital letters, a column it declares."""

    columns = (pa.field("shout_ratio", pa.float64()),)

    def measure(self, row: dict[str, Any], words: list[str], enabled: bool) -> dict[str, Any]:
        text = row["text"]
        return {"shout_ratio": round(sum(c.isupper() for c in text) / max(1, len(text)), 4)}


class SilentShoutScreen(ShoutScreen):
    """The same screen, forgetting to declare its column."""

    columns = ()


class CodeLanguageScreen(Screen):
    """A test screen declaring `language` as a number: the language screen's column is a string."""

    columns = (pa.field("language", pa.int64()),)


def _with_screen(monkeypatch, name: str, target: str) -> None:
    """Register a screen for this test (the registry is how the guards and the loader find them)."""
    entries = dict(registry.SCREENS._entries)
    entries[name] = Entry(name, f"{__name__}:{target}", {})
    monkeypatch.setattr(registry.SCREENS, "_entries", entries)


def _with_stage(monkeypatch, tmp_path, declared: bool) -> None:
    """A stage after `filter` that stamps every row with a `stamp` column (declared or not)."""
    columns = "(pa.field('stamp', pa.string()),)" if declared else "()"
    (tmp_path / "stamp_columns_stage.py").write_text(
        "from dataclasses import replace\n"
        "import pyarrow as pa\n"
        "from synthfactory.run.stages import Stage\n\n"
        "class StampStage(Stage):\n"
        "    name = 'stamp'\n"
        f"    columns = {columns}\n\n"
        "    def run(self, work, state):\n"
        "        return replace(state, rows=[{**row, 'stamp': 'seen'} for row in state.rows])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "stamp_columns_stage", raising=False)
    line = [(name, registry.STAGES.entry(name).target) for name in registry.STAGES]
    line.insert([n for n, _ in line].index("filter") + 1, ("stamp", "stamp_columns_stage:StampStage"))
    monkeypatch.setattr(registry, "STAGES", Registry("stage", dict(line)))


def _run(tmp_path, **overrides) -> tuple[dict, Any]:
    recipe = make_recipe(tmp_path, suite=_suite(), batches__count=2, batches__size=3, **FAST, **overrides)
    summary = _drive(recipe, tmp_path / "store", StubPool())
    return summary, load_dataset_version(tmp_path / "store" / "tiny")


# --- whole runs -----------------------------------------------------------------------------------

def test_a_screens_declared_columns_are_published(tmp_path):
    summary, rows = _run(tmp_path)
    assert summary["accepted"] == rows.num_rows > 0
    # the repetition and language screens declare what their `measure` adds; the base has none of it
    for column in ("repeated_ngram_ratio", "duplicate_line_ratio", "language"):
        assert column in rows.column_names and column not in ROW_SCHEMA.names
    assert all(0.0 <= r <= 1.0 for r in rows["repeated_ngram_ratio"]) and set(rows["language"]) == {"en"}
    # the measure stage's batch metrics, declared by it (the guards' metrics and the panel's agreement)
    assert {"batch_distinct_2", "batch_near_dup_rate", "batch_judge_agreement"} <= set(rows.column_names)


def test_a_new_screens_declared_column_is_published(tmp_path, monkeypatch):
    _with_screen(monkeypatch, "shout", "ShoutScreen")
    summary, rows = _run(tmp_path)
    assert summary["accepted"] == rows.num_rows > 0
    assert "shout_ratio" in rows.column_names and all(0.0 <= v < 0.2 for v in rows["shout_ratio"])


def test_a_screen_adding_an_undeclared_column_fails_the_run_naming_it(tmp_path, monkeypatch):
    _with_screen(monkeypatch, "shout", "SilentShoutScreen")
    with pytest.raises(UndeclaredColumnError, match="SilentShoutScreen: measure adds 'shout_ratio'"):
        _run(tmp_path)
    assert not (tmp_path / "store" / "tiny" / "_delta_log").exists(), "nothing published"


def test_a_stage_adding_an_undeclared_column_fails_at_publish_naming_it(tmp_path, monkeypatch):
    _with_stage(monkeypatch, tmp_path, declared=False)
    with pytest.raises(UndeclaredColumnError, match=r"column\(s\) 'stamp' that nothing in the line declares") as err:
        _run(tmp_path)
    assert "stage 'stamp'" in str(err.value)  # among those that may have added it
    assert not (tmp_path / "store" / "tiny" / "_delta_log").exists(), "nothing published"


def test_a_stage_declaring_its_column_gets_it_published(tmp_path, monkeypatch):
    _with_stage(monkeypatch, tmp_path, declared=True)
    summary, rows = _run(tmp_path)
    assert summary["accepted"] == rows.num_rows > 0 and set(rows["stamp"]) == {"seen"}


# --- the line checked when the recipe loads ---------------------------------------------------------

def test_one_name_with_two_types_is_a_recipe_error_naming_both_owners(tmp_path, monkeypatch):
    _with_screen(monkeypatch, "code_language", "CodeLanguageScreen")
    with pytest.raises(RecipeError) as err:
        load_recipe(make_recipe(tmp_path))
    message = str(err.value)
    assert "column 'language' is declared twice with different types" in message
    assert "screen 'language' as string" in message and "screen 'code_language' as int64" in message
    assert "\n" not in message


def test_a_method_column_another_part_declares_is_a_recipe_error(tmp_path):
    # a structured field named like the language screen's column (same type): the screen would overwrite it
    schema = {"type": "object", "properties": {"language": {"type": "string"}, "summary": {"type": "string"}},
              "required": ["language", "summary"]}
    with pytest.raises(RecipeError, match="column 'language' is declared by screen 'language' and by method "
                                          "'structured'"):
        load_recipe(make_recipe(tmp_path, generation__method="structured",
                                generation__method_options={"schema": schema}))
    # a base column stays the structured method's own check, named by its option
    schema["properties"] = {"score": {"type": "number"}}
    schema["required"] = ["score"]
    with pytest.raises(RecipeError, match=r"properties \['score'\] clash"):
        load_recipe(make_recipe(tmp_path, generation__method="structured",
                                generation__method_options={"schema": schema}))


def test_the_cli_exits_2_with_one_line_for_a_clash(tmp_path, monkeypatch, capsys):
    from synthfactory.cli import main

    _with_screen(monkeypatch, "code_language", "CodeLanguageScreen")
    recipe = make_recipe(tmp_path)
    assert main(["run", str(recipe), "--store", str(tmp_path / "store"), "--no-prefect"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "column 'language'" in err and "screen 'code_language'" in err


# --- who declares what ----------------------------------------------------------------------------

def test_who_declares_what(tmp_path):
    loaded = load_recipe(make_recipe(tmp_path, generation__method="preference", grading__method="logprobs"))
    owners = {part.owner: [f.name for f in part.fields] for part in line_columns(loaded.recipe)}
    assert owners["screen 'repetition'"] == ["repeated_ngram_ratio", "duplicate_line_ratio"]
    assert owners["screen 'language'"] == ["language"] and owners["screen 'length'"] == []
    assert owners["stage 'verify'"] == ["verification"]
    assert owners["stage 'measure'"][-1] == "batch_judge_agreement" and "batch_distinct_2" in owners["stage 'measure'"]
    assert owners["method 'preference'"] == ["chosen", "rejected", "score_chosen", "score_rejected", "margin",
                                            "candidates"]
    # a log-probability judge: the score columns, and the position bias of a method that compares pairs
    assert owners["judge 'judge' (logprobs)"] == ["scores", "score", "judge_first_slot_p", "judge_order_consistent"]
    schema = recipe_schema(loaded.recipe)
    assert schema.names[:len(ROW_SCHEMA)] == ROW_SCHEMA.names  # the base first, unchanged
    assert schema.field("judge_order_consistent").type == pa.bool_()
    # the same judge on a method without pairs: no position-bias columns (they would always be null)
    plain = recipe_schema(load_recipe(make_recipe(tmp_path, grading__method="logprobs")).recipe)
    assert "judge_first_slot_p" not in plain.names and "batch_judge_agreement" in plain.names


def test_every_registered_extension_declares_its_columns(tmp_path):
    from synthfactory.methods.base import Method
    from synthfactory.quality.guards import BATCH_METRICS, QualityGuards

    for name in registry.JUDGES:
        cls = registry.JUDGES.load(name)
        assert all(isinstance(f, pa.Field) for f in cls.columns), name
    for name in registry.SCREENS:
        cls = registry.SCREENS.load(name)
        assert issubclass(cls, Screen) and all(isinstance(f, pa.Field) for f in cls.columns), name
    for name in registry.VERIFIERS:
        assert [f.name for f in registry.VERIFIERS.load(name).columns("x")] == ["batch_verify_pass_rate_x"]
    for name in registry.METHODS:
        cls = registry.METHODS.load(name)
        assert cls.compares_pairs == (cls.pairs is not Method.pairs), f"{name}: compares_pairs disagrees with pairs"
    for name in registry.STAGES:
        assert all(isinstance(f, pa.Field) for f in registry.STAGES.load(name).columns), name
    # the guards' batch metrics are exactly what they declare
    guards = QualityGuards.for_run(load_recipe(make_recipe(tmp_path, quality__embeddings=False)), tmp_path / "index")
    row = {"text": "one two three", "source": "synthetic", "id": "r"}
    assert set(guards.batch_metrics([row], 1, 0, 1)) == {f.name for f in BATCH_METRICS}


# --- the data model: deriving the schema, refusing undeclared keys ----------------------------------

def test_published_schema_is_the_base_plus_each_declared_field_once():
    declared = [Declared("screen 'a'", (pa.field("x", pa.float64()),)),
                Declared("judge 'j'", (pa.field("score", pa.float64()), pa.field("x", pa.float64()))),
                Declared("method 'm'", (pa.field("y", pa.string()),), content=True)]
    schema = published_schema(declared)
    assert schema.names == [*ROW_SCHEMA.names, "x", "y"]
    with pytest.raises(RecipeError, match="column 'score' is declared twice with different types: by the base row"):
        published_schema([Declared("judge 'j'", (pa.field("score", pa.string()),))])
    with pytest.raises(RecipeError, match="column 'text' is declared by the base row .* and by method 'm'"):
        published_schema([Declared("method 'm'", (pa.field("text", pa.string()),), content=True)])


def test_published_rows_refuse_an_undeclared_key_and_keep_internal_ones_out():
    declared = [Declared("method 'm'", (pa.field("y", pa.string()),), internal=("prompt_messages",), content=True)]
    schema = published_schema(declared)
    row = {name: None for name in schema.names} | {"id": "r1", "y": "kept", "prompt_messages": [{"role": "user"}]}
    state = BatchState(batch_id="b1", batch_index=0, stage="validated", status="passed", rows=[row])
    [published] = published_rows([state], schema, declared)
    assert published["y"] == "kept" and "prompt_messages" not in published
    with pytest.raises(UndeclaredColumnError, match=r"row r1 of batch b1 has column\(s\) 'mystery'.*method 'm'"):
        published_rows([BatchState(batch_id="b1", batch_index=0, stage="validated", status="passed",
                                   rows=[{**row, "mystery": 1}])], schema, declared)
