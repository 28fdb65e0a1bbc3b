"""Collapse resistance: a real corpus that installs with the project, seeds accumulated from
several published versions with real rows mixed in, and tail metrics the suite gates on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from synthfactory.inputs.corpus import CORPORA, corpus_file, paragraphs
from synthfactory.inputs.readers import read_texts
from synthfactory.inputs.seeds import SeedRow, _interleave, load_seeds, versions_named
from synthfactory.recipe import load_recipe
from tests.conftest import TOPICS, make_recipe

ROOT = Path(__file__).resolve().parents[1]

RST = """\
Sorting HOW TO
**************

Python lists have a built-in :meth:`list.sort` method that modifies the list in-place. There is also a
:func:`sorted` built-in function that builds a *new* sorted list from an iterable, as the
`tutorial <https://docs.python.org/3/tutorial/>`_ explains in more detail for beginners.

A simple ascending sort is very easy: just call the sorted function. It returns a new sorted list::

   >>> sorted([5, 2, 3, 1, 4])
   [1, 2, 3, 4, 5]

.. note::

   This note is indented and belongs to a directive, so it is not a paragraph of its own here.

* a bullet is a list item, not a paragraph of prose that anyone would read as running text here
"""


def test_prose_paragraphs_of_restructuredtext_keep_the_words_and_drop_the_markup():
    found = paragraphs(RST)
    assert found[0] == ("Python lists have a built-in list.sort method that modifies the list in-place. There is "
                        "also a sorted built-in function that builds a new sorted list from an iterable, as the "
                        "tutorial explains in more detail for beginners.")
    assert len(found) == 1  # the title, the literal block, its lead-in (too short), the note, the list: gone


def test_the_real_corpus_installs_with_the_project_and_loads_offline(tmp_path):
    path = corpus_file("python-docs", "seeds.real.path")
    texts = read_texts(path, "text")
    assert len(texts) >= 3000 and len(set(texts)) == len(texts)
    assert all(len(t.split()) >= 12 and t.endswith((".", ".)")) and "``" not in t and ":func:" not in t for t in texts)
    assert "PSF License" in CORPORA["python-docs"]
    loaded = load_recipe(make_recipe(tmp_path, seeds__real={"path": "corpus:python-docs", "share": 0.3},
                                     quality__reference="corpus:python-docs"))
    assert loaded.files["real"] == loaded.files["reference"] == path
    with pytest.raises(Exception, match=r"seeds.real.path: no corpus 'wiki'; corpora: python-docs"):
        load_recipe(make_recipe(tmp_path, seeds__real={"path": "corpus:wiki", "share": 0.3}))


def test_version_ranges_and_every_prefix_of_the_seed_order_holds_the_real_share():
    assert versions_named("all", [1, 2, 3]) == [1, 2, 3]
    assert versions_named("latest", [1, 2, 3]) == [3]
    assert versions_named("2..latest", [1, 2, 3, 4]) == [2, 3, 4]
    assert versions_named("1..2", [1, 2, 3]) == [1, 2]
    assert versions_named("3", [1, 2, 3]) == [3]
    assert versions_named("all", []) == []
    real = [SeedRow(f"r{i}", {}, source="real") for i in range(3)]
    synthetic = [SeedRow(f"s{i}", {}, source="synthetic", generation_depth=1) for i in range(7)]
    order = _interleave(real, synthetic)
    assert sorted(s.seed_id for s in order) == sorted(s.seed_id for s in real + synthetic)
    for n in range(1, len(order) + 1):
        assert sum(s.source == "real" for s in order[:n]) >= math.floor(0.3 * n)


@pytest.mark.usefixtures("prefect_api_url", "ray_cluster")
def test_accumulated_seeds_from_every_version_with_real_rows_keep_depths_and_the_share(tmp_path):
    """The recursive loop, three runs of one recipe: topics first, then every published version
    plus real paragraphs at half the seeds; depths follow each seed; tails are measured."""
    from flows.factory import factory_flow
    from synthfactory import load_dataset_version

    store = tmp_path / "store"
    recipe = make_recipe(
        tmp_path, topics=TOPICS[:4], batches__count=1, batches__size=4,
        seeds__from_versions="@all", seeds__real={"path": "corpus:python-docs", "share": 0.5},
        generation__prompt_template=("{% if text is defined %}Rewrite in two sentences: {{ text }}"
                                     "{% else %}Explain {{ topic }} in two sentences.{% endif %}"),
        quality__filters__instruction_echo=False, quality__reference="corpus:python-docs")
    runs = [factory_flow(recipe_path=str(recipe), store=str(store)) for _ in range(3)]
    assert [r["seed_versions"] for r in runs] == [[], [1], [1, 2]]
    assert all(r["seed_real_share"] >= 0.5 for r in runs[1:])
    dataset = store / "tiny"
    rows = list(load_dataset_version(dataset))
    depth_of = {r["id"]: r["generation_depth"] for r in rows}
    real_texts = set(read_texts(corpus_file("python-docs", "test"), "text"))
    for row in (r for r in rows if r["source"] == "synthetic" and r["version"] > 1):
        seed = json.loads(row["seed"])
        if row["seed_id"] in depth_of:  # a row of an earlier version: one generation deeper
            assert row["generation_depth"] == depth_of[row["seed_id"]] + 1
        else:  # a real paragraph from the corpus: depth 0, so its rows are depth 1
            assert seed["text"] in real_texts and row["generation_depth"] == 1
    third = [r for r in rows if r["version"] == 3]
    loaded = load_recipe(recipe)
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path, own=str(dataset),
                       real_texts=read_texts(loaded.files["real"], "text"))
    assert seeds.versions == [1, 2, 3]
    assert {s.location.split(":")[0] for s in seeds.rows if s.source == "synthetic"} >= {"tiny@1", "tiny@2"}
    assert {s.generation_depth for s in seeds.rows} >= {0, 1, 2}
    assert sum(s.source == "real" for s in seeds.rows) >= 0.5 * len(seeds.rows)
    synthetic = [r for r in third if r["source"] == "synthetic"]
    assert synthetic and all(r["batch_rare_word_share"] is not None and r["batch_reference_coverage"] is not None
                             for r in synthetic)
    quality = runs[2]["quality"]
    assert {"rare_word_share", "vocab_coverage", "reference_coverage", "drift_vs_reference"} <= set(quality)

    # provenance on the same runs (was test_provenance.py, two more runs of this path): version 1 holds
    # the real share, its rows are real at depth 0 or generated at depth 1, and the counts say which
    v1 = [r for r in rows if r["version"] == 1]
    sources = [r["source"] for r in v1]
    assert sources.count("real") >= 0.5 * len(sources) and runs[0]["quality"]["real_share"] >= 0.5
    assert runs[0]["real_published"] == sources.count("real") and runs[0]["accepted"] == sources.count("synthetic")
    assert {(r["source"], r["generation_depth"]) for r in v1} <= {("real", 0), ("synthetic", 1)}
    # later versions drift from the one before and from the reference, and each batch's drift is a column
    assert all(r["quality"]["drift_vs_previous"] > 0 and r["quality"]["drift_vs_reference"] > 0 for r in runs[1:])
    assert all(r["batch_drift_vs_previous"] is not None for r in rows if r["version"] > 1)
    # seeding from version 2 or 3 with max_depth 2 refuses the rows that are that deep already
    (tmp_path / "capped").mkdir()
    refusals = 0
    for version in (2, 3):
        capped = load_recipe(make_recipe(tmp_path / "capped", generation__prompt_template="Rewrite: {{ text }}",
                                         seeds={"from_version": f"{dataset}@{version}", "max_depth": 2}))
        added = [r for r in rows if r["version"] == version]
        seeds = load_seeds(capped.recipe.seeds, capped.seeds_path)
        assert seeds.rows and all(s.generation_depth + 1 <= 2 for s in seeds.rows)
        refused = [q for q in seeds.quarantined if q.reason.startswith("max_depth")]
        assert len(refused) == sum(r["generation_depth"] >= 2 for r in added)
        assert len(seeds.rows) + len(refused) == len(added)  # the seeds are the rows that version added
        refusals += len(refused)
    assert refusals > 0


@pytest.mark.usefixtures("ray_cluster")
def test_a_batch_in_one_corner_of_the_reference_covers_less_and_the_suite_quarantines_it(tmp_path):
    from synthfactory.quality.guards import QualityGuards
    from synthfactory.quality.validation import SuiteGate

    suite = tmp_path / "coverage.json"
    suite.write_text(json.dumps({"name": "coverage", "expectations": [
        {"type": "expect_column_min_to_be_between", "kwargs": {"column": "batch_reference_coverage",
                                                                "min_value": 0.3}}]}))
    loaded = load_recipe(make_recipe(tmp_path, quality__reference="corpus:python-docs"))
    guards = QualityGuards.for_run(loaded, tmp_path / "index", tmp_path / "embeddings")
    tails = guards.tails
    regions = tails.regions(tails.vectors).tolist()
    corner = max(set(regions), key=regions.count)
    narrow = [t for t, r in zip(tails.sample, regions, strict=True) if r == corner][:8]
    broad = tails.sample[::64][:8]

    def batch(texts: list[str], tag: str) -> list[dict]:
        rows = [{"id": f"{tag}{i}", "source": "synthetic", "text": t} for i, t in enumerate(texts)]
        metrics = guards.batch_metrics(rows, len(rows), 0, 1)
        return [{**r, **metrics} for r in rows]

    narrow_rows, broad_rows = batch(narrow, "n"), batch(broad, "b")
    assert narrow_rows[0]["batch_reference_coverage"] < broad_rows[0]["batch_reference_coverage"]
    assert narrow_rows[0]["batch_reference_coverage"] <= 0.25 <= 0.5 <= broad_rows[0]["batch_reference_coverage"]
    gate = SuiteGate(suite)
    assert gate.validate(narrow_rows)["success"] is False
    assert gate.validate(broad_rows)["success"] is True


def test_the_nightly_loop_is_one_deployment_of_the_recursive_recipe():
    import yaml

    spec = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    [loop] = [d for d in spec["deployments"] if d["name"] == "recursive"]
    assert loop["schedules"] and loop["entrypoint"] == "flows/factory.py:factory_flow"
    loaded = load_recipe(ROOT / loop["parameters"]["recipe_path"])
    seeds = loaded.recipe.seeds
    assert seeds.from_versions == "@all" and seeds.path and seeds.real.share >= 0.2
    assert loaded.files["real"] == loaded.files["reference"] == corpus_file("python-docs", "test")
    suite = json.loads(loaded.suite_path.read_text())
    assert any(e["kwargs"].get("column") == "batch_reference_coverage" for e in suite["expectations"])
