"""A bad recipe exits 2 with one line naming the field path; a good one loads and hashes its inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthfactory.cli import main
from synthfactory.recipe import load_recipe
from tests.conftest import make_recipe


def _break(path: Path, mutate) -> Path:
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["generation"].update(temprature=0.3), "generation.temprature: Extra inputs are not permitted"),
    (lambda d: d["generation"]["sampling"].update(temperature=7),
     "generation.sampling.temperature: Input should be less than or equal to 2"),
    (lambda d: d.pop("grading"), "grading: Field required"),
    (lambda d: d["grading"]["rubric"].append({"name": "Bad Name", "description": "x"}), "grading.rubric.2.name"),
    (lambda d: d["generation"].update(prompt_template="Explain {{ topic "),
     "generation.prompt_template: Jinja2 syntax error"),
    (lambda d: d["seeds"].update(path="missing.txt"), "seeds.path: no such file or folder: missing.txt"),
    (lambda d: d["validation"].update(suite="nope.json"), "validation.suite: no such file or folder: nope.json"),
    (lambda d: d["batches"].update(size=0), "batches.size: Input should be greater than or equal to 1"),
    (lambda d: d["grading"].update(scale_min=5, scale_max=5),
     "grading.scale_max: must be greater than grading.scale_min"),
    (lambda d: d["generation"].update(engine="openai", options={"base_urls": ["http://u:secret@host:8000/v1"]}),
     "generation.options.base_urls: credentials do not belong in base_urls"),
    (lambda d: d["generation"].update(engine="cuda"),
     "generation.engine: unknown engine 'cuda'; known: llamacpp, openai, vllm"),
    # each engine takes its own options: another engine's key is an error naming the field
    (lambda d: d["generation"].update(options={"base_urls": ["http://host:8000/v1"]}),
     "generation.options.base_urls: the llamacpp engine takes no such option (its options: replicas, threads, "
     "context_length)"),
    (lambda d: d["generation"].update(engine="openai", options={"base_urls": ["http://h/v1"], "threads": 2}),
     "generation.options.threads: the openai engine takes no such option"),
    (lambda d: d["generation"].update(engine="openai"),
     "generation.options.base_urls: the openai engine needs at least one endpoint URL"),
    (lambda d: d["grading"].update(engine="openai"),
     "grading.options.base_urls: the openai engine needs at least one endpoint URL"),
    (lambda d: d["grading"].update(judges=[{"name": "a", "method": "json", "engine": "vllm",
                                            "options": {"base_urls": ["http://127.0.0.1:1/v1"]}}]),
     "grading.judges.0.options.base_urls: the vllm engine takes no such option"),
    (lambda d: d["grading"].update(judges=[{"name": "a", "method": "telepathy"}]),
     "grading.judges.0.method: unknown judge 'telepathy'; known: form, json, learned, logprobs, relevance"),
    (lambda d: d["grading"].update(judges=[{"name": "a", "method": "form", "model": "m"}]),
     "grading.judges.0: model: only LLM judges (json, logprobs) take these; form is not an LLM"),
    (lambda d: d["grading"].update(method="form"), "grading.method: form is not an LLM judge"),
    (lambda d: d.update(quality={"filters": {"min_char": 5}}),
     "quality.filters.min_char: no screen takes this option"),
    (lambda d: d.update(quality={"filters": {"min_chars": -1}}),
     "quality.filters.min_chars: Input should be greater than or equal to 0"),
])
def test_bad_recipe_exits_2_naming_the_field(tmp_path, capsys, mutate, expected):
    recipe = _break(make_recipe(tmp_path), mutate)
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err
    assert len(err.splitlines()) == 1, err


def test_not_yaml_and_not_a_mapping_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["run", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    bad.write_text("- just\n- a list\n")
    assert main(["run", str(bad)]) == 2
    assert "a recipe is a YAML mapping" in capsys.readouterr().err


def test_unknown_model_exits_2_before_starting_anything(tmp_path, capsys):
    recipe = _break(make_recipe(tmp_path), lambda d: d["generation"].update(model="no-such-model"))
    assert main(["run", str(recipe)]) == 2
    assert "generation.model: 'no-such-model' is neither a bundled model" in capsys.readouterr().err


def test_recipe_hash_covers_seed_and_suite_content(tmp_path):
    path = make_recipe(tmp_path)
    first = load_recipe(path).recipe_hash
    assert load_recipe(path).recipe_hash == first
    (tmp_path / "seeds.txt").write_text("a different topic\n")
    second = load_recipe(path).recipe_hash
    assert second != first
    (tmp_path / "suite.json").write_text('{"name": "s", "expectations": []}')
    assert load_recipe(path).recipe_hash not in (first, second)


def test_cli_overrides_batches(tmp_path):
    loaded = load_recipe(make_recipe(tmp_path), batches=5, batch_size=3)
    assert (loaded.recipe.batches.count, loaded.recipe.batches.size) == (5, 3)


def test_bundled_recipe_is_valid():
    loaded = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml")
    assert loaded.recipe.name == "quickstart"
    assert loaded.suite_path.name == "quickstart.json"
