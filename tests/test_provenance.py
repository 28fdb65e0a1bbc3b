"""Collapse provenance end to end (real Prefect, Ray, model, Delta): the real-data share holds,
seeding from a published version increments generation_depth, and max_depth is enforced."""

from __future__ import annotations

import pytest

from synthfactory import load_dataset_version
from synthfactory.recipe import load_recipe
from synthfactory.inputs.seeds import load_seeds
from tests.conftest import TOPICS, make_recipe
from tests.test_quality import VARIED

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")


def test_real_share_then_recursive_generation_depths_and_max_depth(tmp_path):
    from flows.factory import factory_flow

    store = tmp_path / "store"
    real = tmp_path / "real.txt"
    real.write_text("\n".join(VARIED) + "\n")
    first = make_recipe(tmp_path, topics=TOPICS[:6], batches__count=2, batches__size=3,
                        grading__method="logprobs", seeds__real={"path": str(real), "share": 0.3})
    one = factory_flow(recipe_path=str(first), store=str(store))
    v1 = load_dataset_version(store / "tiny", version=1)
    sources = v1["source"]
    assert sources.count("real") / len(sources) >= 0.3
    assert one["real_published"] == sources.count("real") and one["accepted"] == sources.count("synthetic")
    assert {(r["source"], r["generation_depth"]) for r in v1} <= {("real", 0), ("synthetic", 1)}
    assert one["quality"]["real_share"] >= 0.3

    second = make_recipe(tmp_path, name="tiny", batches__count=1, batches__size=4, grading__method="logprobs",
                         seeds={"from_version": f"{store / 'tiny'}@1", "max_depth": 3},
                         generation__prompt_template="Rewrite in two sentences: {{ text }}",
                         quality__filters__instruction_echo=False,  # a rewrite may echo; depth is the point
                         quality__reference=str(real))
    two = factory_flow(recipe_path=str(second), store=str(store))
    assert two["version"] == 2
    depth_of = {r["id"]: r["generation_depth"] for r in v1}
    new_rows = [r for r in load_dataset_version(store / "tiny", version=2) if r["version"] == 2]
    assert new_rows and all(r["generation_depth"] == depth_of[r["seed_id"]] + 1 for r in new_rows)
    assert two["quality"]["drift_vs_previous"] > 0 and two["quality"]["drift_vs_reference"] > 0
    assert all(r["batch_drift_vs_previous"] is not None for r in new_rows)  # gateable per batch

    third = make_recipe(tmp_path, name="tiny", generation__prompt_template="Rewrite: {{ text }}",
                        seeds={"from_version": f"{store / 'tiny'}@2", "max_depth": 2})
    loaded = load_recipe(third)
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path)
    assert seeds.rows and all(s.generation_depth + 1 <= 2 for s in seeds.rows)
    refused = [q for q in seeds.quarantined if q.reason.startswith("max_depth")]
    assert len(refused) == sum(r["generation_depth"] >= 2 for r in new_rows) > 0
    assert len(seeds.rows) + len(refused) == len(new_rows)  # seeds are the rows version 2 added
