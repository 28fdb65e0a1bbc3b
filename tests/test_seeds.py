"""Bad seed rows are quarantined with a reason and counted; good rows become seeds in every format."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from synthfactory.run.plan import plan_run
from synthfactory.recipe import SeedsConfig, load_recipe
from synthfactory.inputs.seeds import load_seeds
from tests.conftest import make_recipe


def test_jsonl_bad_rows_are_quarantined_with_reasons(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"topic": "tides"}).encode(),
        b'{"topic": "broken',
        b"\xff\xfe not utf-8",
        b"   ",
        json.dumps({"topic": "x" * 300}).encode(),
        b"[1, 2]",
        json.dumps({"topic": "tides"}).encode(),
        json.dumps({"topic": "volcanoes"}).encode(),
    ]) + b"\n")
    seeds = load_seeds(SeedsConfig(path=str(path), max_chars=200), path)
    plan = plan_run(load_recipe(make_recipe(tmp_path)), seeds, version=1)  # duplicates: on the rendered prompt
    assert [i.seed.fields["topic"] for b in plan.batches for i in b.items][:2] == ["tides", "volcanoes"]
    reasons = {q.location: q.reason.split(":")[0] for q in plan.seeds_quarantined}
    assert reasons == {
        "seeds.jsonl:2": "bad_json", "seeds.jsonl:3": "invalid_utf8", "seeds.jsonl:4": "empty",
        "seeds.jsonl:5": "too_long", "seeds.jsonl:6": "bad_json", "seeds.jsonl:7": "duplicate_seed",
    }
    assert len(seeds.rows) + len(seeds.quarantined) == 8


def test_seed_hygiene_on_what_the_model_would_see(tmp_path):
    """Empty template variables, seeds that render the same prompt up to case and whitespace
    (whatever their ids or unused fields), and seeds carrying benchmark text never reach an engine."""
    recipe = make_recipe(tmp_path, batches__count=None)
    path = tmp_path / "seeds.jsonl"
    rows = [
        {"id": 1, "topic": "tides"},
        {"id": 2, "topic": "   "},                              # empty_field
        {"id": 3, "topic": "  TIDES ", "note": "unused"},       # same prompt as id 1
        {"id": 4, "topic": "Tides", "level": "hard"},           # same prompt as id 1
        {"id": 5, "topic": "the quick brown fox jumps over the lazy dog near the river bank today"},
        {"id": 6, "topic": "volcanoes"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_recipe(recipe)
    seeds = load_seeds(SeedsConfig(path=str(path)), path)
    bench = "the quick brown fox jumps over the lazy dog near the river bank today"
    plan = plan_run(loaded, seeds, version=1, contaminated=lambda text: "bench" if bench in text else None)
    reasons = {q.location: q.reason.split(" ")[0] for q in plan.seeds_quarantined}
    assert reasons == {"seeds.jsonl:2": "empty_field:", "seeds.jsonl:3": "duplicate_seed:",
                       "seeds.jsonl:4": "duplicate_seed:", "seeds.jsonl:5": "contaminated:bench"}
    assert [q.reason for q in plan.seeds_quarantined][0] == "empty_field: topic"
    assert sorted(i.seed.fields["id"] for b in plan.batches for i in b.items) == [1, 6]


def test_a_trailing_sliver_joins_the_batch_before_it():
    from synthfactory.run.plan import batch_bounds

    assert batch_bounds(9, 4) == [(0, 4), (4, 9)]        # 1 left over: joins
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]  # 2, half a batch, stays
    assert batch_bounds(11, 4) == [(0, 4), (4, 8), (8, 11)]  # 3 stays a batch
    assert batch_bounds(3, 8) == [(0, 3)]                # a single small batch stays
    assert batch_bounds(16, 8) == [(0, 8), (8, 16)]


def test_text_parquet_and_saved_dataset_seeds(tmp_path):
    import datasets

    text = tmp_path / "topics.txt"
    text.write_text("tides\n\nvolcanoes\n")
    seeds = load_seeds(SeedsConfig(path=str(text)), text)
    assert [r.fields for r in seeds.rows] == [{"topic": "tides"}, {"topic": "volcanoes"}]
    assert [q.reason for q in seeds.quarantined] == ["empty"]

    parquet = tmp_path / "seeds.parquet"
    pq.write_table(pa.table({"topic": ["tides", None, "volcanoes"]}), parquet)
    seeds = load_seeds(SeedsConfig(path=str(parquet)), parquet)
    assert [r.fields["topic"] for r in seeds.rows] == ["tides", "volcanoes"]
    assert [q.reason for q in seeds.quarantined] == ["empty"]

    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"topic": ["tides", "lava"], "level": [1, 2]}).save_to_disk(str(saved))
    seeds = load_seeds(SeedsConfig(path=str(saved)), saved)
    assert [r.fields for r in seeds.rows] == [{"topic": "tides", "level": 1}, {"topic": "lava", "level": 2}]


def test_rows_missing_a_template_field_are_quarantined_at_planning(tmp_path):
    recipe = make_recipe(tmp_path)
    path = tmp_path / "seeds.jsonl"
    path.write_text(json.dumps({"topic": "tides"}) + "\n" + json.dumps({"subject": "lava"}) + "\n")
    loaded = load_recipe(recipe)
    seeds = load_seeds(SeedsConfig(path=str(path)), path)
    plan = plan_run(loaded, seeds, version=1)
    assert [q.reason for q in plan.seeds_quarantined] == ["template_error: 'topic' is undefined"]


def test_plan_is_deterministic_and_ids_depend_on_version(tmp_path):
    loaded = load_recipe(make_recipe(tmp_path))
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path)
    one, again, two = plan_run(loaded, seeds, 1), plan_run(loaded, seeds, 1), plan_run(loaded, seeds, 2)
    assert [b.batch_id for b in one.batches] == [b.batch_id for b in again.batches]
    assert not {b.batch_id for b in one.batches} & {b.batch_id for b in two.batches}
    assert [len(b.items) for b in one.batches] == [4, 4]
    seeds_per_row = [i.sampling_seed for b in one.batches for i in b.items]
    assert len(set(seeds_per_row)) == len(seeds_per_row)
