"""Dataset cards as a reader sees them, on metadata alone (no engine, Ray or Prefect): every block
of user or generated content parses as the one code block it is, whatever backticks it holds, and
a version whose rows no judge scored has no score histogram, only a line saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from markdown_it import MarkdownIt

from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.model.metadata import VersionMetadata
from synthfactory.publish.card import METRICS_PLOT, SCORE_PLOT, dataset_card, fenced, write_card
from synthfactory.recipe import load_recipe
from synthfactory.store import METADATA_KEY, DatasetStore
from tests.conftest import ROOT

UNSCORED = {f"{i / 5:.1f}-{(i + 1) / 5:.1f}": 0 for i in range(5)}  # what a run with no score records


def _code_version(**extra) -> dict:
    """The commit metadata of a run of the shipped code recipe: verified by its tests, no judge."""
    recipe = load_recipe(ROOT / "recipes" / "code.yaml").recipe.model_dump(mode="json")
    return {"version": 1, "run_id": "code-v1-0a1b2c3d", "recipe_hash": "0a1b2c3d4e5f6a7b", "dataset": "code",
            "generator_model": "smollm2-135m-instruct", "judge_model": None, "method": "text",
            "generated": 24, "accepted": 6, "rejected": 0, "quarantined": 18, "batches": 2,
            "validation": {"b0": "passed", "b1": "quarantined"}, "suite": "code", "mean_score": None,
            "score_histogram": UNSCORED, "acceptance_rate": 0.25,
            "verification": {"tests": {"method": "python_tests", "checked": 24, "passed": 6, "rate": 0.25}},
            "recipe": recipe, **extra}


def _blocks(card: str) -> list[tuple[str, str]]:
    """(info, content) of every fenced code block CommonMark finds in the card's body."""
    body = card.split("---\n", 2)[2]
    return [(t.info, t.content.removesuffix("\n")) for t in MarkdownIt("commonmark").parse(body) if t.type == "fence"]


def test_fence_is_longer_than_any_run_of_backticks_in_its_content():
    assert fenced("plain", "json") == ["```json", "plain", "```"]
    assert fenced("a ```python block\n```") == ["````", "a ```python block\n```", "````"]
    assert fenced("``````")[0] == "```````"


def test_a_template_with_a_code_block_is_one_code_block_of_the_card():
    meta = VersionMetadata.model_validate(_code_version())
    gen = meta.recipe["generation"]
    assert "```" in gen["prompt_template"]  # the shipped recipe's template holds a ```python block
    example = {"prompt": "Complete `add`.", "text": "```python\ndef add(a, b):\n    return a + b\n```"}
    card = dataset_card(meta, 6, [], repo_id="org/code", example=example)
    assert _blocks(card) == [
        ("python", 'import datasets\nds = datasets.load_dataset("org/code", revision="v1")'),
        ("json", json.dumps(gen["method_options"], indent=2, sort_keys=True)),
        ("json", json.dumps(example, indent=2, ensure_ascii=False)),
        ("jinja", gen["prompt_template"].strip()),
        ("", gen["system_prompt"].strip()),
    ]
    headings = [t for t in MarkdownIt("commonmark").parse(card.split("---\n", 2)[2]) if t.type == "heading_open"]
    assert len(headings) >= 8  # the sections after the template are headings, not the inside of a block


def _commit(uri: Path, meta: dict) -> None:
    from deltalake import CommitProperties, write_deltalake

    rows = [{name: None for name in ROW_SCHEMA.names} | {"id": f"{meta['version']}-{i}", "text": "t",
                                                         "version": meta["version"]} for i in range(2)]
    write_deltalake(str(uri), pa.Table.from_pylist(rows, schema=ROW_SCHEMA), mode="append",
                    commit_properties=CommitProperties(custom_metadata={METADATA_KEY: json.dumps(meta)}))


def test_a_version_no_judge_scored_has_no_score_histogram_and_says_why(tmp_path):
    uri = tmp_path / "code"
    _commit(uri, _code_version())
    scored = {**_code_version(version=2, run_id="code-v2"), "judge_model": "smollm2-135m-instruct", "mean_score": 0.7,
              "score_histogram": {**UNSCORED, "0.6-0.8": 2},
              "recipe": {**_code_version()["recipe"], "grading": {"method": "json", "threshold": 0.5}}}
    _commit(uri, scored)
    store = DatasetStore(uri)

    card = write_card(store, 1).read_text()
    folder = uri / "_cards" / "v1"
    assert SCORE_PLOT not in card and not (folder / SCORE_PLOT).exists()
    assert "No score histogram: no judge ran, so the rows were verified, not scored (their `score` is null)." in card
    assert (folder / METRICS_PLOT).read_bytes().startswith(b"\x89PNG")

    card = write_card(store, 2).read_text()  # a judged version keeps its histogram
    assert f"![score histogram]({SCORE_PLOT})" in card and (uri / "_cards" / "v2" / SCORE_PLOT).is_file()
    judged_but_empty = VersionMetadata.model_validate({**scored, "score_histogram": UNSCORED, "accepted": 0})
    assert "no published synthetic row of this version has a judge score" in dataset_card(judged_but_empty, 0, [])
