"""Judge panels, agreement, calibration measures and the labelled set, driven by a stub chat:
the logic that is not about the engine, in seconds. The real judges run in test_calibration.py."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from synthfactory.engines.base import ChatResult
from synthfactory.grading import krippendorff_alpha
from synthfactory.grading.calibration import at_threshold, fingerprint, load_labels, roc_auc, threshold_for_precision
from synthfactory.inputs.seeds import load_seeds
from synthfactory.recipe import load_recipe
from synthfactory.run.plan import engine_specs_for, plan_run
from synthfactory.run.stages import filter_batch, generate_batch, grade_batch
from tests.conftest import cli_command, make_recipe

ROOT = Path(__file__).resolve().parents[1]
PANEL = [{"name": "llm", "method": "logprobs"}, {"name": "shape", "method": "form"}]


def _yes(p: float) -> ChatResult:
    import math

    return ChatResult(text="yes", finish_reason="stop", prompt_tokens=10, completion_tokens=1, latency_s=0.01,
                      logprobs=[{"token": "yes", "logprob": math.log(p),
                                 "top": [{"token": "yes", "logprob": math.log(p)},
                                         {"token": "no", "logprob": math.log(1 - p)}]}])


def _text(s: str) -> ChatResult:
    return ChatResult(text=s, finish_reason="stop", prompt_tokens=3, completion_tokens=5, latency_s=0.01)


def _graded(tmp_path, aggregate: str, p_yes: float, answer: str, threshold: float = 0.5):
    tmp_path.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe(make_recipe(tmp_path, batches__count=1, grading__judges=PANEL,
                                     grading__aggregate=aggregate, grading__threshold=threshold))
    plan = plan_run(recipe, load_seeds(recipe.recipe.seeds, recipe.seeds_path), version=1)

    def chat(spec, requests):
        return [_text(answer) if r.logprobs is None else _yes(p_yes) for r in requests]

    state = generate_batch(plan, plan.batches[0], recipe.recipe, chat)
    return recipe, grade_batch(plan, state, recipe.recipe, chat)


def test_krippendorff_alpha_matches_the_hand_computed_value_and_its_bounds():
    # units (1,1), (2,2), (3,4): D_o = 2/6, D_e = 82/30 -> alpha = 1 - (1/3)/(82/30)
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 4]]) == pytest.approx(1 - (1 / 3) / (82 / 30))
    assert krippendorff_alpha([[0.1, 0.5, 0.9], [0.1, 0.5, 0.9]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[0.2, 0.2], [0.2, 0.2]]) is None  # no variance: undefined, not perfect
    rng = random.Random(1)
    noise = krippendorff_alpha([[rng.random() for _ in range(400)] for _ in range(2)])
    assert abs(noise) < 0.1
    assert krippendorff_alpha([[0.0, 1.0, None], [1.0, 0.0, 0.5]]) < 0  # opposite verdicts


def test_a_panel_keeps_every_judges_scores_and_aggregates_by_the_rule(tmp_path):
    answer = "Light scatters off air molecules. Blue scatters most, so the sky looks blue."
    for aggregate, expected in (("mean", (0.8 + 1.0) / 2), ("min", 0.8), ("majority", 1.0)):
        recipe, state = _graded(tmp_path / aggregate, aggregate, 0.8, answer)
        assert state.rows, state.rejected
        for row in state.rows:
            scores = json.loads(row["scores"])
            assert set(scores) == {"llm", "shape"}
            assert scores["llm"]["accuracy"] == pytest.approx(0.8) and scores["shape"]["complete"] == 1.0
            assert row["score"] == pytest.approx(expected)
            assert row["judge_prompt_tokens"] == 20  # two criteria asked of the LLM judge, 10 tokens each
    # a majority of two judges is both: one judge below the threshold fails the row
    recipe, state = _graded(tmp_path / "split", "majority", 0.3, answer)
    assert all(r["score"] == 0.5 for r in state.rows)
    assert recipe.recipe.grading.pass_mark == 1.0
    assert filter_batch(state, recipe.recipe.grading.pass_mark).rows == []


def test_an_observer_is_graded_and_kept_but_has_no_vote(tmp_path):
    recipe = load_recipe(make_recipe(tmp_path, batches__count=1, grading__aggregate="mean", grading__judges=[
        {"name": "llm", "method": "logprobs", "weight": 0}, {"name": "shape", "method": "form"}]))
    plan = plan_run(recipe, load_seeds(recipe.recipe.seeds, recipe.seeds_path), version=1)

    def chat(spec, requests):
        return [_text("A full sentence here.") if r.logprobs is None else _yes(0.1) for r in requests]

    state = grade_batch(plan, generate_batch(plan, plan.batches[0], recipe.recipe, chat), recipe.recipe, chat)
    for row in state.rows:
        scores = json.loads(row["scores"])
        assert scores["llm"]["score"] == pytest.approx(0.1)  # graded and kept
        assert row["score"] == pytest.approx(scores["shape"]["score"]) == 1.0  # but no vote
    (tmp_path / "m").mkdir()
    majority = load_recipe(make_recipe(tmp_path / "m", grading__aggregate="majority", grading__judges=[
        {"name": "llm", "method": "logprobs", "weight": 0}, {"name": "a", "method": "form"},
        {"name": "b", "method": "relevance"}]))
    assert majority.recipe.grading.pass_mark == 1.0  # two voters: both must pass


def test_panel_agreement_is_a_batch_metric(tmp_path):
    _, constant = _graded(tmp_path / "a", "mean", 0.99, "Complete sentence number one here.")
    # each judge gives every row the same score, but not the same as the other: nothing agreed on
    assert constant.judge_agreement is not None and constant.judge_agreement < 0
    (tmp_path / "b").mkdir()
    recipe = load_recipe(make_recipe(tmp_path / "b", batches__count=1, grading__judges=PANEL))
    plan = plan_run(recipe, load_seeds(recipe.recipe.seeds, recipe.seeds_path), version=1)
    texts = iter(["A full sentence.", "cut off mid", "Another full one.", "and this one is cut"] * 2)
    sure = {}

    def chat(spec, requests):
        out = []
        for r in requests:
            if r.logprobs is None:
                out.append(_text(next(texts)))
            else:  # the LLM judge agrees with the form judge: high for complete rows, lower for cut ones
                body = r.messages[-1]["content"]
                sure.setdefault(body, 0.99 if "." in body.split("Response:\n")[1].split("\n")[0] else 0.6)
                out.append(_yes(sure[body]))
        return out

    state = grade_batch(plan, generate_batch(plan, plan.batches[0], recipe.recipe, chat), recipe.recipe, chat)
    assert state.judge_agreement is not None and state.judge_agreement > 0.8


def test_an_unreadable_panel_answer_rejects_the_row_naming_the_judge(tmp_path):
    recipe = load_recipe(make_recipe(tmp_path, batches__count=1, grading__max_attempts=2, grading__judges=[
        {"name": "grader", "method": "json"}, {"name": "shape", "method": "form"}]))
    plan = plan_run(recipe, load_seeds(recipe.recipe.seeds, recipe.seeds_path), version=1)
    calls = []

    def chat(spec, requests):
        calls.append(len(requests))
        return [_text("A fine answer." if r.json_schema is None else "not json") for r in requests]

    state = grade_batch(plan, generate_batch(plan, plan.batches[0], recipe.recipe, chat), recipe.recipe, chat)
    assert not state.rows and len(state.rejected) == 4
    assert all(r["reason"].startswith("judge_unparseable: grader: not JSON") for r in state.rejected)
    assert calls == [4, 4, 4]  # generation, then the judge asked twice (max_attempts)


def test_engines_a_panel_starts(tmp_path):
    recipe = load_recipe(make_recipe(tmp_path, grading__judges=[
        {"name": "a", "method": "logprobs"}, {"name": "b", "method": "json"}, {"name": "c", "method": "relevance"}]))
    [spec] = engine_specs_for(recipe)  # one model: json and logprobs judges share the generator's actors
    assert spec.logprobs
    (tmp_path / "o").mkdir()
    other = load_recipe(make_recipe(tmp_path / "o", grading__judges=[
        {"name": "a", "method": "json", "model": str(tmp_path / "other.gguf")}, {"name": "b", "method": "form"}]))
    assert [s.model for s in engine_specs_for(other)] == ["smollm2-135m-instruct", str(tmp_path / "other.gguf")]
    assert not any(s.logprobs for s in engine_specs_for(other))


@pytest.mark.parametrize("judges, message", [
    ([{"name": "a", "method": "relevance", "model": "x"}], "grading.judges.0: Value error, model: only LLM judges"),
    ([{"name": "a", "method": "form"}, {"name": "a", "method": "relevance"}], "judges: names must be unique"),
    ([{"name": "a", "method": "psychic"}], "grading.judges.0.method: unknown judge 'psychic'; known: form, json"),
    ([{"name": "a", "method": "form", "weight": 0}], "judges: every weight is 0"),
])
def test_bad_panels_fail_in_one_line_naming_the_field(tmp_path, judges, message):
    recipe = make_recipe(tmp_path, grading__judges=judges)
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "s")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert message.replace("Value error, ", "") in line


def test_roc_auc_kappa_and_threshold_for_precision_match_references():
    rng = random.Random(3)
    good = [rng.random() < 0.5 for _ in range(300)]
    scores = [round(min(1, max(0, (0.65 if g else 0.4) + rng.gauss(0, 0.2))), 2) for g in good]  # with ties
    assert roc_auc(good, scores) == pytest.approx(roc_auc_score(good, scores))
    stats = at_threshold(good, scores, 0.5)
    assert stats["kappa"] == pytest.approx(cohen_kappa_score(good, [s >= 0.5 for s in scores]))
    wanted = threshold_for_precision(good, scores, 0.8)
    assert at_threshold(good, scores, wanted["threshold"])["precision"] >= 0.8
    lower = max(s for s in set(scores) if s < wanted["threshold"])
    assert at_threshold(good, scores, lower)["precision"] < 0.8  # it is the lowest that reaches it
    assert threshold_for_precision([True, False], [0.1, 0.9], 0.99) is None


def test_the_fingerprint_ignores_the_threshold_but_not_the_judges(tmp_path):
    for sub in "abc":
        (tmp_path / sub).mkdir()
    a = load_recipe(make_recipe(tmp_path / "a")).recipe.grading
    b = load_recipe(make_recipe(tmp_path / "b", grading__threshold=0.9)).recipe.grading
    c = load_recipe(make_recipe(tmp_path / "c", grading__judges=PANEL)).recipe.grading
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_bad_label_lines_are_quarantined_naming_the_line_and_a_file_with_none_usable_fails_in_one_line(tmp_path):
    good = tmp_path / "labels.jsonl"
    good.write_text('{"prompt": "p", "text": "t", "label": "good"}\n{"prompt": "p", "text": "u", "label": 0}\n')
    assert [r["good"] for r in load_labels(good).rows] == [True, False] and load_labels(good).quarantined == []
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([
        b'{"prompt": "p", "text": "t", "label": "good"}',
        b'{"prompt": "p", "label": "bad"}',
        b'{"prompt": "p", "text": "broken',
        b"\xff\xfe not utf-8",
        b"",
        b'{"prompt": "p", "text": "v", "label": "maybe"}',
        b'{"prompt": "p", "text": 7, "label": "bad"}',
        b'["p", "t", "bad"]',
        b'{"prompt": "p", "text": "' + b"x" * 100_001 + b'", "label": "bad"}',
        b'{"prompt": "p", "text": "u", "label": "bad"}',
    ]) + b"\n")
    labels = load_labels(mixed)
    assert [r["text"] for r in labels.rows] == ["t", "u"]
    assert [(q.location, q.reason.split(":")[0]) for q in labels.quarantined] == [
        ("mixed.jsonl:2", "missing text"), ("mixed.jsonl:3", "bad_json"), ("mixed.jsonl:4", "invalid_utf8"),
        ("mixed.jsonl:5", "empty"), ("mixed.jsonl:6", "bad_label"), ("mixed.jsonl:7", "wrong_type"),
        ("mixed.jsonl:8", "bad_json"), ("mixed.jsonl:9", "too_long")]
    assert all(q.stage == "labels" and q.payload for q in labels.quarantined if q.reason != "empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "label": "bad"}\n{"prompt": "p", "text": "t"\n')
    done = subprocess.run(cli_command("calibrate", str(make_recipe(tmp_path)), "--labels", str(bad)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"synthfactory: error: {bad}: no usable labelled rows (2 quarantined; first: bad.jsonl:1: missing text)")


def test_the_shipped_labelled_set_is_what_its_builder_makes():
    built = subprocess.run([sys.executable, "-c", "import json, build; print(json.dumps(build.build()))"],
                           cwd=ROOT / "recipes" / "labels", capture_output=True, text=True, check=True)
    rows = json.loads(built.stdout)
    shipped = [json.loads(line) for line in (ROOT / "recipes" / "labels" / "quickstart.jsonl").read_text().splitlines()]
    assert rows == shipped and len(rows) >= 200
    kinds = {k: sum(r["kind"] == k for r in rows) for k in {r["kind"] for r in rows}}
    assert kinds.pop("good") > 100 and set(kinds.values()) == {20} and len(kinds) == 6
    assert all(r["label"] == ("good" if r["kind"] == "good" else "bad") for r in rows)
    goods = {r["prompt"]: r["text"] for r in rows if r["kind"] == "good"}
    assert all(r["text"] != goods[r["prompt"]] for r in rows if r["kind"] != "good")  # every corruption changed it
    assert (ROOT / "recipes" / "labels" / "README.md").is_file()
