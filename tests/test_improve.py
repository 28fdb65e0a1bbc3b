"""The self-learning loop (`synthfactory improve`, `synthfactory.improve`).

End to end, with the real things: the bundled model generating through llama.cpp on a real Ray
cluster, the real math verifiers, a real Delta table, TRL's LoRA fine-tune, llama.cpp's GGUF
converter and Prefect (the flow on a real API server): the CLI runs round 1, the flow resumes for
round 2 without redoing round 1, and a round killed after its run published adopts that version
instead of making a second. The loop's own logic (split, statistics, promotion, stop and resume) also gets fast
tests with stub steps (no engine)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from synthfactory.errors import UserError
from synthfactory.improve.heldout import breakdown, held_out_eval, held_out_items, paired_test, split_seeds
from synthfactory.improve.loop import ImproveLoop, LoopOptions, absolute_paths, options_for
from synthfactory.model.improve import HeldOutEval, ModelRecord, Perplexity, RoundRun
from synthfactory.recipe import load_recipe
from tests.conftest import cli_command, cli_env

ROOT = Path(__file__).resolve().parents[1]
MATH = ROOT / "recipes" / "math.yaml"


# the loop's logic ----------------------------------------------------------------------------------------

def test_the_split_is_stable_disjoint_and_holds_out_at_most_half():
    loaded = load_recipe(MATH)
    split = split_seeds(loaded, 100)
    assert split == split_seeds(loaded, 100).model_copy(update={"created": split.created})
    assert len(split.held_out) == 100 and len(split.train) == 100 and not set(split.held_out) & set(split.train)
    assert split_seeds(loaded, 10).held_out == split.held_out[:10]  # one order: a smaller split is its head
    with pytest.raises(UserError, match="hold out at most half"):
        split_seeds(loaded, 101)
    items = held_out_items(loaded, split)
    assert len(items) == 100 and items.temperature == 0.3 and items.max_new_tokens == 96
    assert items.chats[0][0]["role"] == "system" and items.chats[0][1]["content"] == items.prompts[0]


def test_pass_at_1_is_the_mean_share_right_with_an_interval_over_items():
    items = held_out_items(load_recipe(MATH), split_seeds(load_recipe(MATH), 4))
    reasons = [["ok", "ok"], ["ok", "wrong_answer: got 3, expected 4"], ["no_final_answer", "no_final_answer"],
               ["wrong_answer: got 1, expected 2", "ok"]]
    evaluation = held_out_eval(reasons, items)
    assert evaluation.pass_at_1 == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert evaluation.per_item == [1.0, 0.5, 0.0, 0.5] and evaluation.samples == 2
    lo, hi = evaluation.interval
    assert 0 <= lo < evaluation.pass_at_1 < hi <= 1
    assert evaluation.reasons == {"ok": 4, "no_final_answer": 2, "wrong_answer": 2}
    assert evaluation.breakdown == {"no_final_answer_share": 0.25, "accuracy_when_answered": pytest.approx(4 / 6)}


def test_the_code_breakdown_separates_code_that_does_not_run_from_failed_tests():
    reasons = [["ok", "syntax_error: line 3"], ["no_code_block", "tests_failed: AssertionError at test line 2"]]
    assert breakdown(reasons, ["python_tests"]) == {"no_runnable_code_share": 0.5, "tests_failed_share": 0.25,
                                                    "accuracy_when_runnable": 0.5}


def test_the_paired_test_finds_a_real_gain_and_not_noise():
    current = [0.0] * 60 + [1.0] * 40
    better = [1.0] * 30 + [0.0] * 30 + [1.0] * 40  # 30 items gained, none lost
    gain = paired_test(current, better, against_round=0)
    assert gain.delta == pytest.approx(0.3) and gain.better and gain.interval[0] > 0 and gain.p_value < 0.01
    shuffled = [1.0] * 10 + [0.0] * 50 + [1.0] * 30 + [0.0] * 10  # 10 gained, 10 lost
    noise = paired_test(current, shuffled, against_round=0)
    assert noise.delta == pytest.approx(0.0) and not noise.better and noise.p_value > 0.3
    with pytest.raises(ValueError):
        paired_test([1.0], [1.0, 0.0], against_round=0)


def _stub_record(k: int, per_item: list[float], promoted: bool = True, why: str = "stub") -> ModelRecord:
    return ModelRecord(round=k, dataset="math", base_model="smollm2-135m-instruct", promoted=promoted, why=why,
                       held_out=HeldOutEval(items=len(per_item), samples=1, temperature=0.3, max_new_tokens=96,
                                            pass_at_1=sum(per_item) / len(per_item), per_item=per_item))


def test_the_guard_and_the_noise_refuse_promotion(tmp_path):
    loop = ImproveLoop(MATH, tmp_path, options_for("tiny"))
    gain = paired_test([0.0] * 50, [1.0] * 20 + [0.0] * 30, against_round=0)
    drifted = Perplexity(items=8, value=53.0, base=50.0, relative=0.06)
    kept = Perplexity(items=8, value=51.0, base=50.0, relative=0.02)
    assert loop._decide(gain, kept)[0] is True
    promoted, why = loop._decide(gain, drifted)
    assert not promoted and why.startswith("collapse guard: real-text perplexity +6.0% over the base model")
    promoted, why = loop._decide(paired_test([0.5] * 50, [0.5] * 50, against_round=1), kept)
    assert not promoted and why.startswith("not better beyond the noise")


def test_the_loop_stops_at_a_round_not_promoted_and_never_redoes_a_finished_step(tmp_path, monkeypatch):
    """Stub steps (no engine): round 1 promoted, round 2 not: the loop stops at 2, says why, and a
    second call with more rounds reads every finished step instead of running it again."""
    calls: list[tuple[str, int]] = []
    outcomes = {1: ([1.0] * 8 + [0.0] * 8, True), 2: ([1.0] * 8 + [0.0] * 8, False)}

    def evaluate_base(self):
        if (recorded := self.model_record(0)) is not None:
            return recorded
        calls.append(("base", 0))
        self._write(_stub_record(0, [0.0] * 16), "round0", "model.json")
        return self.model_record(0)

    def generate(self, k, current):
        if (recorded := self.round_run(k)) is not None:
            return recorded
        calls.append(("generate", k))
        self._write(RoundRun(round=k, version=k), f"round{k}", "run.json")
        return self.round_run(k)

    def train(self, k, current):
        if (recorded := self.model_record(k)) is not None:
            return recorded
        calls.append(("train", k))
        per_item, promoted = outcomes[k]
        self._write(_stub_record(k, per_item, promoted, why="stub says so"), f"round{k}", "model.json")
        return self.model_record(k)

    monkeypatch.setattr(ImproveLoop, "evaluate_base", evaluate_base)
    monkeypatch.setattr(ImproveLoop, "generate", generate)
    monkeypatch.setattr(ImproveLoop, "train", train)
    loop = ImproveLoop(MATH, tmp_path, options_for("tiny"))
    records = loop.run(3)
    assert [r.round for r in records] == [0, 1, 2]
    assert calls == [("base", 0), ("generate", 1), ("train", 1), ("generate", 2), ("train", 2)]
    state = loop.state()
    assert state.current_round == 1 and state.stopped_because == "round 2 was not promoted: stub says so"
    calls.clear()
    assert [r.round for r in ImproveLoop(MATH, tmp_path, options_for("tiny")).run(5)] == [0, 1, 2]
    assert calls == []  # the split, round 0 and both rounds were read, not redone; round 3 never starts
    split = json.loads((tmp_path / "math" / "_models" / "split.json").read_text())
    assert len(split["held_out"]) == 16  # recorded once, kept


def test_bad_options_and_recipes_get_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="--samples 0"):
        ImproveLoop(MATH, tmp_path, LoopOptions(samples=0))
    with pytest.raises(UserError, match="--real-mix 1"):
        ImproveLoop(MATH, tmp_path, LoopOptions(real_mix=1.0))
    with pytest.raises(UserError, match="--size 'huge'"):
        options_for("huge")
    with pytest.raises(UserError, match="needs a verified recipe"):
        ImproveLoop(ROOT / "recipes" / "quickstart.yaml", tmp_path, options_for("tiny")).split()


def test_a_round_recipe_reads_the_same_files_from_anywhere(tmp_path):
    data = {"seeds": {"path": "seeds/math.jsonl"}, "validation": {"suite": "../expectations/math.json"},
            "quality": {"reference": "corpus:python-docs"}}
    fixed = absolute_paths(data, ROOT / "recipes")
    assert fixed["seeds"]["path"] == str(ROOT / "recipes" / "seeds" / "math.jsonl")
    assert fixed["validation"]["suite"] == str(ROOT / "expectations" / "math.json")
    assert fixed["quality"]["reference"] == "corpus:python-docs"


def test_real_text_makes_its_share_of_the_training_examples_and_never_a_held_out_paragraph(tmp_path):
    from synthfactory.inputs.corpus import is_held_out
    from synthfactory.probe.evalsets import real_text_eval

    loop = ImproveLoop(MATH, tmp_path, options_for("tiny", real_mix=0.25))
    rows = loop.real_rows(30)
    assert len(rows) == 10  # 10 of 40 examples
    evaluated = set(real_text_eval(32).texts)
    for row in rows:
        user, assistant = row["messages"]
        assert user["content"].startswith("Continue this passage:") and assistant["content"]
        paragraph = user["content"].split("\n\n", 1)[1][:-1] + ". " + assistant["content"]
        assert not is_held_out(paragraph) and paragraph not in evaluated
    assert ImproveLoop(MATH, tmp_path, options_for("tiny", real_mix=0.0)).real_rows(30) == []


# end to end ----------------------------------------------------------------------------------------------

def _cli(args: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_improve_runs_rounds_resumes_in_prefect_and_stores_a_model_per_round(tmp_path, prefect_api_url, ray_cluster):
    """`synthfactory improve recipes/math.yaml --rounds 1 --size tiny` (the real model, engine, verifiers,
    table and fine-tune), then the Prefect flow for 2 rounds on the same store: round 1 is read, not
    redone; round 2 generates with round 1's model if it was promoted. Then round 2's run record is
    removed (a kill after its run published): the round adopts its version, with no second one."""
    from flows.improve import improve_flow
    from synthfactory.improve.loop import read_models
    from synthfactory.store import DatasetStore

    store = tmp_path / "store"
    env = cli_env(prefect_api_url, ray_cluster)
    first = _cli(["improve", str(MATH), "--rounds", "1", "--size", "tiny", "--keep-going", "--store", str(store)],
                 env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "round  held-out pass@1" in first.stdout and "versions [1]: " in first.stdout  # the table
    dataset = DatasetStore(store / "math")
    assert [v.version for v in dataset.versions()] == [1]
    models = store / "math" / "_models"
    split = json.loads((models / "split.json").read_text())
    published = set(dataset.read().column("seed_id").to_pylist())
    assert published and published <= set(split["train"]) and not published & set(split["held_out"])
    round1 = json.loads((models / "round1" / "model.json").read_text())
    assert round1["trained_on_versions"] == [1] and round1["training_rows"] > 0 and round1["lora"]
    assert (models / "round1" / "model.gguf").stat().st_size > 50_000_000
    assert (models / "round1" / "adapter" / "adapter_config.json").is_file()
    assert "held-out pass@1" in (models / "round1" / "README.md").read_text()
    created = round1["created"]
    from llama_cpp import Llama  # the stored GGUF is what the llamacpp engine serves: it loads and answers

    served = Llama(model_path=str(models / "round1" / "model.gguf"), n_ctx=256, n_threads=1, verbose=False)
    try:
        said = served.create_chat_completion([{"role": "user", "content": "What is 2 + 3?"}], max_tokens=8,
                                             temperature=0.0)["choices"][0]["message"]["content"]
    finally:
        served.close()
    assert said.strip()

    state = improve_flow(recipe_path=str(MATH), store=str(store), rounds=2, size="tiny",
                         options={"keep_going": True})
    assert state["rounds_done"] == 2
    assert json.loads((models / "round1" / "model.json").read_text())["created"] == created  # not redone
    assert [v.version for v in dataset.versions()] == [1, 2]
    round2 = json.loads((models / "round2" / "model.json").read_text())
    assert round2["trained_on_versions"] == [1, 2]
    assert round2["generator"] == (str((models / "round1" / "model.gguf").resolve()) if round1["promoted"]
                                   else "smollm2-135m-instruct")
    assert round2["paired"]["against_round"] == (1 if round1["promoted"] else 0)

    # Killed after round 2's run published, before its record was written: the round's recipe (the same
    # file again) finds its version by recipe hash and adopts it; no engine starts, no second version.
    published = json.loads((models / "round2" / "run.json").read_text())
    (models / "round2" / "run.json").unlink()
    loop = ImproveLoop(MATH, store, options_for("tiny", keep_going=True))
    in_use = loop.model_record(1 if round1["promoted"] else 0)
    adopted = loop.generate(2, in_use)
    assert adopted.version == 2 and adopted.recipe_hash == published["recipe_hash"]
    assert [v.version for v in dataset.versions()] == [1, 2]
    uri, records, _ = read_models(str(store / "math"))
    assert [r.round for r in records] == [0, 1, 2] and records[2].trained_on_versions == [1, 2]

    listed = _cli(["models", str(store / "math")], {**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert listed.returncode == 0 and "round 2: " in listed.stdout and "model.gguf" in listed.stdout
    empty = _cli(["models", str(tmp_path / "nothing")], {**os.environ}, timeout=120)
    assert empty.returncode != 0 and "Traceback" not in empty.stderr
