"""The learned judge (`method: learned`): train, cross-validate, store as JSON, load, fingerprint.

Fast tests use fixed features or a stand-in embedder (the logic here is not about MiniLM); one
end-to-end test grades with the real MiniLM, under the heavy lock."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from synthfactory.errors import RecipeError, UserError
from synthfactory.grading import learned_model as lm
from synthfactory.grading.learned import CV_FILE, MODEL_FILE, LearnedJudge, model_fingerprint
from synthfactory.grading.panel import Panel, describe_judges
from synthfactory.recipe import GradingConfig, JudgeConfig, load_recipe

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "recipes" / "labels" / "quickstart.jsonl"


def fixed_table(n: int = 120, seed: int = 1) -> tuple[lm.FeatureTable, np.ndarray]:
    """Rows whose label depends on one informative scalar and a direction of the embeddings, plus noise."""
    rng = np.random.default_rng(seed)
    good = rng.random(n) < 0.35
    informative = good * 1.0 + rng.normal(0, 0.7, n)
    noise = rng.normal(0, 1, n)
    direction = rng.normal(0, 1, 768)
    embeddings = rng.normal(0, 1, (n, 768)) + np.outer(good * 0.08, direction)
    return lm.FeatureTable(["a.informative", "b.noise"], np.column_stack([informative, noise]), embeddings), good


def test_cross_validation_measures_held_out_rows_and_beats_chance_on_a_learnable_signal():
    table, good = fixed_table()
    model, cv = lm.train(table, good, threshold=0.5)
    assert cv["rows"] == 120 and cv["good"] == int(good.sum()) and cv["folds"] == 5
    assert 0.75 < cv["auc"] <= 1.0
    # the CV number is out of fold: it is not the training fit, which is higher on the same rows
    fit_auc = lm.auc(good, model.scores(table))
    assert fit_auc > cv["auc"]
    assert cv["auc"] == pytest.approx(lm.auc(good, np.array(cv["oof_scores"])), abs=1e-4)
    at = cv["at_threshold"]
    assert at["accepted_good"] + at["accepted_bad"] + at["rejected_good"] + at["rejected_bad"] == 120
    # same rows, same seed: the same model
    again, cv_again = lm.train(table, good, threshold=0.5)
    assert again.to_json() == model.to_json() and cv_again == cv


def test_a_label_that_is_noise_gives_a_chance_auc_not_a_flattering_one():
    table, good = fixed_table()
    shuffled = np.random.default_rng(7).permutation(good)
    _, cv = lm.train(table, shuffled, threshold=0.5)
    assert cv["auc"] < 0.7


def test_model_json_round_trip_gives_identical_scores():
    table, good = fixed_table()
    model = lm.fit(table, good, c=0.3, dims=8)
    back = lm.LinearModel.from_json(model.to_json())
    assert np.array_equal(back.scores(table), model.scores(table))
    assert len(back.pca_components) == 8
    json.loads(model.to_json())  # plain JSON: loading it runs no code


def _labels(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _slice(n: int = 40) -> list[dict]:
    """Good and bad rows of the constructed set, alternating, so a slice has both."""
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    good = [r for r in rows if r["label"] == "good"]
    bad = [r for r in rows if r["label"] == "bad"]
    return [r for pair in zip(good, bad, strict=False) for r in pair][:n]  # interleaved while both last


def _grading(labels: Path, features: list[str] | None = None) -> GradingConfig:
    return GradingConfig(judges=[
        JudgeConfig(name="form", method="form", weight=0),
        JudgeConfig(name="learned", method="learned", labels=str(labels), features=features)], threshold=0.5)


def test_fingerprint_changes_when_labels_change_and_not_when_only_their_order_does(tmp_path):
    rows = _slice(20)
    a = _labels(tmp_path / "a.jsonl", rows)
    b = _labels(tmp_path / "b.jsonl", list(reversed(rows)))
    flipped = [dict(r, label="bad" if r["label"] == "good" else "good") if i == 0 else r for i, r in enumerate(rows)]
    c = _labels(tmp_path / "c.jsonl", flipped)
    fp = {name: model_fingerprint(_grading(path).judges[1], _grading(path)) for name, path in
          (("a", a), ("b", b), ("c", c))}
    assert fp["a"] == fp["b"] and fp["a"] != fp["c"]
    assert model_fingerprint(_grading(a, ["signals"]).judges[1], _grading(a, ["signals"])) != fp["a"]


def test_schema_a_learned_judge_needs_labels_and_others_take_none():
    with pytest.raises(ValueError, match="labels: a learned judge needs labelled rows"):
        JudgeConfig(name="learned", method="learned")
    with pytest.raises(ValueError, match="only learned judges take these"):
        JudgeConfig(name="relevance", method="relevance", labels="x.jsonl")


def _recipe(tmp_path: Path, judges: list[dict]) -> Path:
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8"))
    recipe["seeds"]["path"] = str(ROOT / "recipes" / "seeds" / "topics.txt")
    recipe["validation"]["suite"] = str(ROOT / "expectations" / "quickstart.json")
    recipe["grading"]["judges"] = judges
    recipe["grading"]["threshold"] = 0.5
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_a_bad_labels_path_is_one_recipe_error_line_at_load(tmp_path):
    path = _recipe(tmp_path, [{"name": "form", "method": "form", "weight": 0},
                              {"name": "learned", "method": "learned", "labels": "labels/missing.jsonl"}])
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert "grading.judges.1.labels: no such file or folder: labels/missing.jsonl" in str(err.value)
    assert "\n" not in str(err.value)
    (tmp_path / "store" / "tiny").mkdir(parents=True)  # a dataset folder nobody labelled yet
    path = _recipe(tmp_path, [{"name": "form", "method": "form", "weight": 0},
                              {"name": "learned", "method": "learned", "labels": "store/tiny"}])
    with pytest.raises(RecipeError, match="has no labels table .*label rows first with `synthfactory label "):
        load_recipe(path)


def test_labels_relative_to_the_recipe_are_found_and_hashed_into_the_recipe(tmp_path):
    (tmp_path / "labels").mkdir()
    _labels(tmp_path / "labels" / "mine.jsonl", _slice(20))
    path = _recipe(tmp_path, [{"name": "form", "method": "form", "weight": 0},
                              {"name": "learned", "method": "learned", "labels": "labels/mine.jsonl"}])
    first = load_recipe(path)
    _labels(tmp_path / "labels" / "mine.jsonl", _slice(22))
    second = load_recipe(path)
    assert first.recipe_hash != second.recipe_hash
    judge = second.recipe.grading.panel[1]
    assert describe_judges(second.recipe)[1]["model"] == f"learned:{model_fingerprint(judge, second.recipe.grading)}"


def test_labels_with_only_one_kind_are_one_user_error_line(tmp_path):
    rows = [r for r in _slice(20) if r["label"] == "good"]
    grading = _grading(_labels(tmp_path / "good.jsonl", rows), ["signals"])
    with pytest.raises(UserError, match="needs both good and bad rows"):
        Panel(grading, embedder=lambda: StandInEmbedder()).grade([("p", "t.")], [None, None], lambda k, a: 0)


class StandInEmbedder:
    """Deterministic unit vectors from a text's words (a stand-in for MiniLM in fast tests)."""

    def encode(self, ids: list[str], texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384))
        for k, text in enumerate(texts):
            for word in text.lower().split():
                out[k, zlib.crc32(word.strip(".,").encode()) % 384] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_the_panel_trains_after_the_other_judges_stores_json_and_the_next_panel_loads_it(tmp_path):
    grading = _grading(_labels(tmp_path / "l.jsonl", _slice(40)))
    dataset = tmp_path / "store" / "demo"
    pairs = [(r["prompt"], r["text"]) for r in _slice(48)[40:]]
    first = Panel(grading, embedder=StandInEmbedder, dataset_uri=str(dataset))
    graded = first.grade(pairs, [None, None], lambda k, a: 0)
    judge = first.judges[1]
    assert isinstance(judge, LearnedJudge) and judge.fingerprint
    folder = next(dataset.glob(f"_calibration/*/learned/{judge.fingerprint}"))
    cv = json.loads((folder / CV_FILE).read_text())
    assert cv["rows"] == 40 and cv["fingerprint"] == judge.fingerprint and "judge.form" in cv["features"]
    assert set(graded.by_judge) == {"form", "learned"}
    assert all(v is not None and 0.0 <= v <= 1.0 for v in graded.by_judge["learned"])
    # the verdict's score is the learned judge's (form is an observer)
    assert [v.score for v in graded.verdicts] == graded.by_judge["learned"]
    from synthfactory.grading import learned as learned_module

    learned_module._TRAINED.clear()  # a fresh process: the stored JSON, not the memory
    second = Panel(grading, embedder=StandInEmbedder, dataset_uri=str(dataset))
    (folder / CV_FILE).write_text(json.dumps({**cv, "marker": "loaded"}))
    again = second.grade(pairs, [None, None], lambda k, a: 0)
    assert second.judges[1].cv["marker"] == "loaded"
    assert again.by_judge["learned"] == graded.by_judge["learned"]
    assert (folder / MODEL_FILE).read_text().startswith("{")


def test_the_learned_folder_sits_in_the_calibration_folder_of_the_same_judges(tmp_path):
    from synthfactory.grading.calibration import CALIBRATION_DIR, fingerprint
    from synthfactory.grading.learned import CALIBRATION_DIR as LEARNED_CALIBRATION_DIR
    from synthfactory.grading.learned import judges_fingerprint

    grading = _grading(_labels(tmp_path / "l.jsonl", _slice(20)))
    assert judges_fingerprint(grading) == fingerprint(grading) and LEARNED_CALIBRATION_DIR == CALIBRATION_DIR


def test_end_to_end_relevance_form_and_learned_on_the_real_minilm(tmp_path):
    """Real all-MiniLM-L6-v2: the learned judge trains on 40 constructed rows after relevance and form
    grade them, reports nested CV, stores its model, and grades 8 other rows; a second panel loads it."""
    grading = GradingConfig(judges=[
        JudgeConfig(name="relevance", method="relevance", weight=0),
        JudgeConfig(name="form", method="form", weight=0),
        JudgeConfig(name="learned", method="learned", labels=str(_labels(tmp_path / "l.jsonl", _slice(40))))],
        threshold=0.5)
    rows = _slice(48)[40:]
    pairs = [(r["prompt"], r["text"]) for r in rows]
    dataset = tmp_path / "store" / "e2e"
    panel = Panel(grading, dataset_uri=str(dataset))
    graded = panel.grade(pairs, [None, None, None], lambda k, a: 0)
    judge = panel.judges[2]
    cv = judge.cv
    assert cv["rows"] == 40 and cv["folds"] == 5 and cv["auc"] is not None
    assert "judge.relevance" in cv["features"] and "signal.cosine" in cv["features"]
    assert cv["final"]["dims"] in (0, 8, 32)
    scores = graded.by_judge["learned"]
    assert all(s is not None for s in scores)
    good = np.array([r["label"] == "good" for r in rows])
    assert (np.mean([s for s, g in zip(scores, good, strict=True) if g])
            > np.mean([s for s, g in zip(scores, good, strict=True) if not g]))
    from synthfactory.grading import learned as learned_module
    from synthfactory.grading.calibration import learned_section

    assert learned_section(panel)[0]["fingerprint"] == judge.fingerprint
    learned_module._TRAINED.clear()
    again = Panel(grading, dataset_uri=str(dataset)).grade(pairs, [None, None, None], lambda k, a: 0)
    assert again.by_judge["learned"] == scores


def test_generator_features_need_a_llamacpp_generator_one_line_at_load(tmp_path):
    (tmp_path / "labels").mkdir()
    _labels(tmp_path / "labels" / "mine.jsonl", _slice(20))
    judges = [{"name": "form", "method": "form", "weight": 0},
              {"name": "learned", "method": "learned", "labels": "labels/mine.jsonl", "features": ["generator"]}]
    loaded = load_recipe(_recipe(tmp_path, judges))
    assert loaded.recipe.grading.panel[1]._generator[0] == "smollm2-135m-instruct"
    recipe = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    recipe["generation"].update(engine="openai", model="m", options={"base_urls": ["http://127.0.0.1:9/v1"]})
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match="features: generator needs a llamacpp generator"):
        load_recipe(tmp_path / "recipe.yaml")


def test_generator_log_probabilities_of_a_fluent_answer_beat_word_salad():
    """The real SmolLM2 (llama.cpp): the generator's own fluent text is likelier than shuffled words."""
    import random

    from synthfactory.grading.learned import GeneratorScorer

    scorer = GeneratorScorer("smollm2-135m-instruct", "You are a patient teacher.")
    prompt = "Explain what rain is to a curious high-school student in three or four sentences."
    fluent = "Rain is water that falls from clouds. Water vapour cools, forms droplets, and they fall when heavy."
    salad = " ".join(random.Random(3).sample(fluent.split(), len(fluent.split())))
    assert scorer.prefix(prompt) == ("<|im_start|>system\nYou are a patient teacher.<|im_end|>\n<|im_start|>user\n"
                                     f"{prompt}<|im_end|>\n<|im_start|>assistant\n")  # SmolLM2's own template
    assert scorer.features(prompt, fluent)[0] > scorer.features(prompt, salad)[0]
    again = GeneratorScorer("smollm2-135m-instruct", "You are a patient teacher.")  # no cache: scored again
    assert again.features(prompt, fluent) == scorer.features(prompt, fluent)


def test_the_calibrate_section_gives_cv_numbers_at_the_current_threshold_and_flags_training_labels(tmp_path):
    from synthfactory.grading.labelsets import load_label_source
    from synthfactory.grading.learned import learned_report

    path = _labels(tmp_path / "l.jsonl", _slice(40))
    panel = Panel(_grading(path), embedder=StandInEmbedder)
    panel.grade([("Explain rain.", "Rain falls.")], [None, None], lambda k, a: 0)
    [section] = learned_report(panel, load_label_source(path).rows)
    assert "training fit" in section["note"] and "oof_scores" not in section
    cv = panel.judges[1].cv
    assert section["at_threshold"]["threshold"] == 0.5 and section["auc"] == cv["auc"]
    [other] = learned_report(panel, load_label_source(_labels(tmp_path / "o.jsonl", _slice(48)[40:])).rows)
    assert "note" not in other


REAL_DEV = ROOT / "recipes" / "labels" / "quickstart_real_dev.jsonl"


def test_across_labellers_both_directions_with_intervals_and_the_card_cites_the_worse(tmp_path):
    """Real MiniLM, real labels: trained on the dev rows of labellers A and B (every good row and a third
    of the bad ones, signals only, so it is fast: MiniLM's encoding is most of its time), the judge
    stores each labeller's rows scored by a model trained on the other's, both ways, with bootstrap
    intervals and the same-labeller figures; calibrate's section and the card cite the worse
    direction, the very figures stored."""
    from synthfactory.grading.cross_labeller import lines
    from synthfactory.grading.learned import learned_report, stored_summary
    from synthfactory.model.metadata import JudgeInfo
    from synthfactory.publish.card import _grading_section
    from tests.test_calibration_origins import _meta

    rows = [json.loads(line) for line in REAL_DEV.read_text(encoding="utf-8").splitlines()]
    rows = [r for k, r in enumerate(rows) if r["label"] == "good" or k % 3 == 0]
    per = {n: [r for r in rows if r["labeller"] == n] for n in ("A", "B")}
    grading = GradingConfig(judges=[JudgeConfig(name="form", method="form", weight=0),
                                    JudgeConfig(name="learned", method="learned", features=["signals"],
                                                labels=str(_labels(tmp_path / "dev.jsonl", rows)))], threshold=0.091377)
    dataset = tmp_path / "store" / "across"
    panel = Panel(grading, dataset_uri=str(dataset))
    panel.grade([(rows[0]["prompt"], rows[0]["text"])], [None, None], lambda k, a: 0)
    judge = panel.judges[1]
    cross = judge.cv["cross_labeller"]
    assert judge.cv["labels"]["labellers"] == {
        n: {"rows": len(per[n]), "good": sum(r["label"] == "good" for r in per[n])} for n in per}
    assert [(d["train"], d["test"]) for d in cross["directions"]] == [(["B"], "A"), (["A"], "B")]
    for d in cross["directions"]:
        other = "B" if d["test"] == "A" else "A"
        assert (d["rows"], d["train_rows"]) == (len(per[d["test"]]), len(per[other]))
        assert d["good"] == sum(r["label"] == "good" for r in per[d["test"]])
        lo, hi = d["auc_interval"]
        assert 0.0 <= lo <= d["auc"] <= hi <= 1.0 and len(d["scores"]) == d["rows"]
    assert [w["labeller"] for w in cross["within"]] == ["A", "B"]
    assert all(w["auc_interval"][0] <= w["auc"] <= w["auc_interval"][1] for w in cross["within"])
    worst = min(cross["directions"], key=lambda d: d["auc"])
    assert cross["worst"]["auc"] == worst["auc"] and cross["worst"]["test"] == worst["test"]
    assert any(line.startswith("the figure to cite") for line in lines(cross))
    # calibrate's section: both directions, no per-row scores
    [section] = learned_report(panel)
    assert len(section["cross_labeller"]["directions"]) == 2 and section["cross_labeller"]["worst"] == cross["worst"]
    assert all("scores" not in d for d in section["cross_labeller"]["directions"])
    # the card: the stored figures, the worse direction first
    summary = stored_summary(str(dataset), grading, f"learned:{judge.fingerprint}")
    assert summary["cross_labeller"]["worst"] == cross["worst"]
    meta = _meta(None)
    judges = [JudgeInfo(name="form", method="form", weight=0),
              JudgeInfo.model_validate({"name": "learned", "method": "learned", "weight": 1,
                                        "model": f"learned:{judge.fingerprint}", "cross_validated": summary})]
    meta = meta.model_copy(update={"judging": meta.judging.model_copy(update={"judges": judges})})
    card = "\n".join(_grading_section(meta, grading.model_dump(mode="json")))
    lo, hi = worst["auc_interval"]
    other = "B" if worst["test"] == "A" else "A"
    direction = (f"{worst['auc']:.4g} (95% CI {lo:.2f}-{hi:.2f}), trained on labeller {other}'s {worst['train_rows']} "
                 f"rows, tested on labeller {worst['test']}'s {worst['rows']} rows ({worst['good']} good)")
    cited = f"ROC-AUC across labellers {direction}: the worse of 2 directions"
    assert f"Learned judge **learned** (`learned:{judge.fingerprint}`): {cited}" in card
    assert f"; {cited}" in card  # in the estimate of what a person would see too
    assert f"out of fold (the same labellers' rows): ROC-AUC {judge.cv['auc']:.4g}" in card
    # calibrate on the rows that trained it: the card's sentence cites the worse direction too
    from synthfactory.grading.calibration import calibration_folder, latest_calibration, report_for, write_calibration
    from synthfactory.grading.labelsets import load_label_source
    from synthfactory.publish.card import what_a_person_would_see
    from tests.test_calibration_origins import _graded

    labels = load_label_source(tmp_path / "dev.jsonl")
    [section] = learned_report(panel, labels.rows)
    graded = _graded([(f"r{k}", "real", k < 4, 0.9 if k % 2 else 0.05) for k in range(16)])
    write_calibration(calibration_folder(str(dataset), grading),
                      report_for(graded, grading, 0.8, labels, "across", learned=[section]), graded)
    said = what_a_person_would_see(_meta(latest_calibration(str(dataset), grading)).judging.calibration)
    assert f"its ROC-AUC across labellers: {direction}; cross-validated on the same labellers' rows" in said


def test_labels_of_one_labeller_have_no_cross_labeller_figure_and_the_card_says_so(tmp_path):
    from synthfactory.model.metadata import JudgeInfo
    from synthfactory.publish.card import _learned_sentence

    rows = [dict(r, labeller="A") for r in _slice(40)]
    panel = Panel(_grading(_labels(tmp_path / "l.jsonl", rows), ["signals"]), embedder=StandInEmbedder)
    panel.grade([("Explain rain.", "Rain falls.")], [None, None], lambda k, a: 0)
    cv = panel.judges[1].cv
    assert cv["cross_labeller"] is None and cv["labels"]["labellers"] == {"A": {"rows": 40, "good": 20}}
    info = JudgeInfo.model_validate({"name": "learned", "method": "learned", "model": "learned:x",
                                     "cross_validated": {**cv, "labellers": cv["labels"]["labellers"]}})
    assert _learned_sentence(info, 0.5).startswith("not measured across labellers (its labels name one labeller, A); ")
