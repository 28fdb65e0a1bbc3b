"""The verify stage wired into a run: a failed check quarantines the row before any judge sees it,
verdicts travel as the `verification` lineage column, each verifier's pass rate is a batch column
and a version metric, the seed contract exits 2, and preference pairs come from a verifier.

Fast tests use a stub chat function and a tiny verifier defined here (registered for the test
only). The stage in a real run on the bundled model is test_verified_recipes.py's (math.yaml end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from synthfactory.cli import main
from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.inputs.seeds import load_seeds
from synthfactory.methods import method_for
from synthfactory.model.batch import BatchState
from synthfactory.model.columns import verify_rate_column
from synthfactory.model.metadata import VersionMetadata
from synthfactory.publish.card import _verification_section
from synthfactory.publish.formats import convert
from synthfactory.recipe import load_recipe, recipe_identity
from synthfactory.recipe.columns import recipe_schema
from synthfactory.registry import STAGES, VERIFIERS, Entry
from synthfactory.run.plan import build_verifiers, plan_run
from synthfactory.run.results import totals_for, verification_totals
from synthfactory.run.stages import filter_batch, generate_batch, grade_batch, measure_batch, verify_batch
from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions
from tests.conftest import make_recipe

SEEDS = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in ((2, 3), (4, 4), (7, 1), (6, 3))]


class EndsWithOptions(VerifierOptions):
    strip_period: bool = Field(True, description="ignore a final '.'")


class EndsWithAnswer(Verifier):
    """A tiny verifier for these tests: the response's last word is the seed's `answer`."""

    name = "ends_with"
    Options = EndsWithOptions
    needs = ("answer",)

    def verify(self, claim: Claim) -> Verdict:
        words = claim.response.split()
        last = words[-1] if words else ""
        last = last.rstrip(".") if self.options.strip_period else last
        if not last:
            return Verdict(False, "no_final_answer")
        if last != str(claim.seed["answer"]):
            return Verdict(False, f"wrong_answer: {last} != {claim.seed['answer']}", {"got": last})
        return Verdict(True, "ok", {"got": last})


class NoDigitNine(Verifier):
    """A second check (no `needs`), to see verifiers run in order and the first failure settle."""

    name = "no_nine"
    seen: list[str] = []

    def verify(self, claim: Claim) -> Verdict:
        NoDigitNine.seen.append(claim.response)
        if "boom" in claim.response:
            raise ValueError("cannot read this")
        return Verdict("9" not in claim.response, "ok" if "9" not in claim.response else "has_nine")


@pytest.fixture
def test_verifiers(monkeypatch):
    """Register the two verifiers above for this test (the registry is how a recipe names them)."""
    entries = dict(VERIFIERS._entries)
    entries["ends_with"] = Entry("ends_with", f"{__name__}:EndsWithAnswer", {"needs": ("answer",)})
    entries["no_nine"] = Entry("no_nine", f"{__name__}:NoDigitNine", {"needs": ()})
    monkeypatch.setattr(VERIFIERS, "_entries", entries)
    NoDigitNine.seen = []


def _recipe(tmp_path: Path, seeds: list[dict] = SEEDS, verification: list[dict] | None = None,
            grading: bool = False, **overrides) -> Path:
    (tmp_path / "math.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    path = make_recipe(tmp_path, seeds__path="math.jsonl", seeds__format="jsonl",
                       generation__prompt_template="{{ question }}", batches__size=len(seeds),
                       batches__count=1, quality__embeddings=False,
                       verification=verification if verification is not None else
                       [{"name": "answer", "method": "ends_with"}], **overrides)
    if not grading:
        data = yaml.safe_load(path.read_text())
        data.pop("grading")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _result(text: str) -> ChatResult:
    return ChatResult(text=text, finish_reason="stop", prompt_tokens=3, completion_tokens=5, latency_s=0.01)


class StubChat:
    """Answers each request with `answer(request)` and records every request it was sent."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[ChatRequest] = []

    def __call__(self, spec, requests):
        self.requests.extend(requests)
        return [_result(self.answer(r)) for r in requests]


def _user(request: ChatRequest) -> str:
    return request.messages[-1]["content"]


def _right_for_even(request: ChatRequest) -> str:
    """Right answers for 2 + 3 and 7 + 1, wrong for the others."""
    question = _user(request)
    a, b = (int(x) for x in question.removeprefix("What is ").rstrip("?").split(" + "))
    return f"The sum is {a + b}." if (a + b) % 2 == 0 else f"The sum is {a + b + 1}."


def _made(tmp_path: Path, answer=_right_for_even, **kwargs):
    loaded = load_recipe(_recipe(tmp_path, **kwargs))
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    method = method_for(loaded.recipe)
    state = generate_batch(plan, plan.batches[0], loaded.recipe, StubChat(answer), method)
    return loaded, plan, method, state


def test_stage_line_has_verify_between_screen_and_grade():
    assert STAGES.names == ("generate", "screen", "verify", "grade", "filter", "measure", "validate")


def test_failed_rows_are_quarantined_with_the_reason_and_never_graded(tmp_path, test_verifiers):
    loaded, plan, method, state = _made(tmp_path, grading=True)
    verified = verify_batch(state, method, build_verifiers(loaded.recipe))
    assert (sorted(r["seed_id"] for r in verified.rows + verified.quarantined)
            == sorted(r["seed_id"] for r in state.rows))
    assert [r["prompt"] for r in verified.rows] == ["What is 4 + 4?", "What is 7 + 1?"]
    assert sorted((r["stage"], r["reason"]) for r in verified.quarantined) == [
        ("verify", "verify_failed: answer: wrong_answer: 10 != 9"),
        ("verify", "verify_failed: answer: wrong_answer: 6 != 5")]
    assert verified.verified == {"answer": [4, 2]}
    # lineage: the verdicts, as JSON, on every row that went through (quarantined ones too)
    assert json.loads(verified.rows[0]["verification"]) == {
        "answer": {"passed": True, "reason": "ok", "details": {"got": "8"}}}
    assert json.loads(verified.quarantined[0]["verification"])["answer"]["passed"] is False

    judge = StubChat(lambda r: json.dumps({"accuracy": 5, "clarity": 5}))
    graded = grade_batch(plan, verified, loaded.recipe, judge, method)
    asked = " ".join(_user(r) for r in judge.requests)
    assert (judge.requests and "The sum is 8." in asked
            and "The sum is 10." not in asked and "The sum is 6." not in asked)
    assert len(graded.rows) == 2 and all(r["score"] == 1.0 for r in graded.rows)
    totals = totals_for(plan, [graded])
    assert totals.generated == totals.accepted + totals.rejected + totals.quarantined == 4
    assert totals.reasons == {"verify_failed": 2}


def test_without_grading_rows_pass_with_no_judge_and_no_judge_model(tmp_path, test_verifiers):
    loaded, plan, method, state = _made(tmp_path)
    assert loaded.recipe.grading is None and plan.judge_model is None and plan.judges == ()
    verified = verify_batch(state, method, build_verifiers(loaded.recipe))
    judge = StubChat(lambda r: pytest.fail("no judge runs without grading"))
    kept = filter_batch(grade_batch(plan, verified, loaded.recipe, judge, method), None)
    assert len(kept.rows) == 2 and not kept.rejected and not judge.requests
    assert all(r["score"] is None and r["judge_model"] is None for r in kept.rows)


def test_pass_rate_is_a_batch_column_a_version_metric_and_a_card_line(tmp_path, test_verifiers):
    from synthfactory.quality.guards import QualityGuards

    loaded, plan, method, state = _made(tmp_path)
    verified = verify_batch(state, method, build_verifiers(loaded.recipe))
    guards = QualityGuards.for_run(loaded, tmp_path / "index")
    measured = measure_batch(plan, verified, guards)
    column = verify_rate_column("answer")
    assert column == "batch_verify_pass_rate_answer"
    assert [r[column] for r in measured.rows] == [0.5, 0.5]
    schema = recipe_schema(loaded.recipe, method)  # the verifier declares its rate; every row has `verification`
    assert column in schema.names and "verification" in schema.names
    (tmp_path / "plain").mkdir()
    unverified = recipe_schema(load_recipe(make_recipe(tmp_path / "plain")).recipe)
    assert "verification" in unverified.names and column not in unverified.names

    records = verification_totals([measured, measured], {"answer": "ends_with"})
    assert records["answer"].model_dump() == {"method": "ends_with", "checked": 8, "passed": 4, "rate": 0.5}
    meta = VersionMetadata.model_validate({"version": 1, "verification": records})
    again = VersionMetadata.model_validate(json.loads(json.dumps(meta.as_commit())))
    assert again.verification["answer"].rate == 0.5 and again.totals.generated == 0
    assert VersionMetadata.model_validate({"version": 1}).verification == {}  # older versions read as before
    assert "| answer (`ends_with`) pass rate | 4 of 8 (0.5) |" in "\n".join(_verification_section(again))


def test_verifiers_run_in_order_and_the_first_failure_settles_the_row(tmp_path, test_verifiers):
    def answer(request):
        return {"What is 2 + 3?": "It is 5", "What is 4 + 4?": "It is 9", "What is 7 + 1?": "boom 8",
                "What is 6 + 3?": "It is 9"}[_user(request)]

    loaded, plan, method, state = _made(tmp_path, answer=answer, verification=[
        {"name": "answer", "method": "ends_with"}, {"name": "nine", "method": "no_nine"}])
    verified = verify_batch(state, method, build_verifiers(loaded.recipe))
    reasons = {r["prompt"]: r["reason"] for r in verified.quarantined}
    assert reasons == {"What is 4 + 4?": "verify_failed: answer: wrong_answer: 9 != 8",
                       "What is 6 + 3?": "verify_failed: nine: has_nine",
                       "What is 7 + 1?": "verify_failed: nine: verifier_error: ValueError: cannot read this"}
    assert [r["prompt"] for r in verified.rows] == ["What is 2 + 3?"]
    assert "It is 9" in NoDigitNine.seen and NoDigitNine.seen.count("It is 9") == 1  # 4 + 4 failed first
    assert verified.verified == {"answer": [4, 3], "nine": [3, 1]}
    assert set(json.loads(verified.rows[0]["verification"])) == {"answer", "nine"}


def test_a_seed_lacking_the_field_quarantines_its_rows_not_the_run(tmp_path, test_verifiers):
    seeds = [*SEEDS[:3], {"question": "What is 6 + 3?", "answer": ""}]
    loaded, plan, method, state = _made(tmp_path, seeds=seeds)
    verified = verify_batch(state, method, build_verifiers(loaded.recipe))
    lacking = [r for r in verified.quarantined if r["prompt"] == "What is 6 + 3?"]
    assert [r["reason"] for r in lacking] == ["verify_failed: answer: missing_seed_field: answer"]
    assert verified.verified == {"answer": [3, 2]}  # the row lacking its answer was not checked


def test_seeds_without_the_field_exit_2_with_one_line_before_any_engine(tmp_path, capsys, test_verifiers):
    seeds = [{"question": s["question"], "topic": "sums"} for s in SEEDS]
    recipe = _recipe(tmp_path, seeds=seeds)
    assert main(["run", str(recipe), "--no-prefect", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("synthfactory: error: verification[0] (ends_with) needs seed field 'answer'; ")
    assert err.endswith("math.jsonl has: question, topic")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("change, expected", [
    ({"verification": [{"name": "answer", "method": "ends_with", "options": {"strip_dot": True}}]},
     "verification[0].options.strip_dot: the ends_with verifier takes no such option (its options: strip_period)"),
    ({"verification": [{"name": "answer", "method": "ends_with", "options": {"strip_period": "maybe"}}]},
     "verification[0].options.strip_period: Input should be a valid boolean"),
    ({"verification": [{"name": "answer", "method": "oracle"}]}, "verification.0.method: unknown verifier 'oracle'"),
    ({"verification": [{"name": "a", "method": "ends_with"}, {"name": "a", "method": "no_nine"}]},
     "verification: names must be unique"),
    ({"verification": [{"name": "Answer", "method": "ends_with"}]}, "verification.0.name: String should match"),
    ({"verification": []}, "grading: Field required (a recipe without `verification` needs a judge)"),
    ({"generation__method": "preference", "grading": True},
     "grading: a preference recipe with `verification` takes no grading"),
])
def test_bad_verification_exits_2_naming_the_field(tmp_path, capsys, test_verifiers, change, expected):
    change = dict(change)
    grading = change.pop("grading", False)
    recipe = _recipe(tmp_path, grading=grading, **change)
    assert main(["run", str(recipe), "--no-prefect"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_no_verification_hashes_as_before(tmp_path, test_verifiers):
    plain = load_recipe(make_recipe(tmp_path))
    assert "verification" not in recipe_identity(plain.recipe) and plain.recipe.verification == []
    (tmp_path / "v").mkdir()
    verified = load_recipe(_recipe(tmp_path / "v"))
    identity = recipe_identity(verified.recipe)
    assert identity["verification"] == [{"name": "answer", "method": "ends_with", "options": {"strip_period": True}}]
    assert "grading" not in identity


def test_preference_pairs_from_a_verifier(tmp_path, test_verifiers):
    def answer(request):  # 2 + 3: right then wrong; 4 + 4: wrong then right; 7 + 1: both right; 6 + 3: both wrong
        first = request.temperature == 0.2
        right = {"What is 2 + 3?": first, "What is 4 + 4?": not first, "What is 7 + 1?": True,
                 "What is 6 + 3?": False}[_user(request)]
        total = sum(int(x) for x in _user(request).removeprefix("What is ").rstrip("?").split(" + "))
        return f"So {total if right else total + 2}"

    loaded, plan, method, state = _made(tmp_path, answer=answer, generation__method="preference",
                                        generation__method_options={"candidates": 2, "temperatures": [0.2, 0.9]})
    verified = verify_batch(state, method, build_verifiers(loaded.recipe))
    assert verified.verified == {"answer": [8, 4]}  # every candidate is checked
    pairs = {r["prompt"]: r for r in verified.rows}
    assert set(pairs) == {"What is 2 + 3?", "What is 4 + 4?"}
    assert pairs["What is 2 + 3?"]["chosen"][-1]["content"] == "So 5"
    assert pairs["What is 2 + 3?"]["rejected"][-1]["content"] == "So 7"
    assert pairs["What is 4 + 4?"]["chosen"][-1]["content"] == "So 8"
    assert pairs["What is 4 + 4?"]["rejected"][-1]["content"] == "So 10"
    pair = pairs["What is 2 + 3?"]
    assert (pair["score_chosen"], pair["score_rejected"], pair["margin"], pair["score"]) == (1.0, 0.0, 1.0, None)
    candidates = json.loads(pair["verification"])["answer"]["details"]["candidates"]
    assert [c["passed"] for c in candidates] == [True, False]
    assert sorted(r["reason"] for r in verified.quarantined) == [
        "verify_failed: answer: no_verified_pair: 0 of 2 candidates right",
        "verify_failed: answer: no_verified_pair: 2 of 2 candidates right"]

    import pyarrow as pa

    kept = filter_batch(grade_batch(plan, verified, loaded.recipe, StubChat(lambda r: pytest.fail("judged")),
                                    method), None)
    schema = recipe_schema(loaded.recipe, method)
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k in schema.names} for r in kept.rows], schema=schema)
    dpo = convert(table, "dpo", VersionMetadata(version=1, method="preference")).to_pylist()
    assert dpo[0]["prompt"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert dpo[0]["chosen"] == [{"role": "assistant", "content": "So 5"}]
    assert dpo[0]["rejected"] == [{"role": "assistant", "content": "So 7"}]


def test_conversation_rows_verify_their_last_assistant_turn(tmp_path, test_verifiers):
    claims = method_for(load_recipe(_recipe(tmp_path, generation__method="conversation")).recipe).verify_claims({
        "prompt": "p", "text": "User: p\n\nAssistant: 3\n\nUser: again\n\nAssistant: 5", "seed": '{"answer": "5"}',
        "messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "3"},
                     {"role": "user", "content": "again"}, {"role": "assistant", "content": "5"}]})
    assert [(c.response, dict(c.seed)) for c in claims] == [("5", {"answer": "5"})]


def test_recipes_without_verification_pass_the_stage_untouched(tmp_path):
    loaded = load_recipe(make_recipe(tmp_path))
    state = BatchState(batch_id="b", batch_index=0, stage="screened", rows=[{"id": "x", "source": "synthetic"}])
    out = verify_batch(state, method_for(loaded.recipe), build_verifiers(loaded.recipe))
    assert out.rows == state.rows and out.verified is None and out.stage == "verified"


def test_a_run_staged_before_the_verify_stage_existed_resumes(tmp_path):
    """Stage keys are `{batch_id}-{stage}`: a run interrupted before this stage was added has no
    `-verify` results; the rerun verifies (a pass-through without verification) and loads the rest."""
    from synthfactory.errors import EngineFailure
    from tests.test_driver import FAST, StubPool, _drive, _suite

    recipe = make_recipe(tmp_path, suite=_suite(), batches__count=3, batches__size=4, **FAST)
    with pytest.raises(EngineFailure, match="replica lost"):
        _drive(recipe, tmp_path / "store", StubPool(fail_on_call=3))
    staging = tmp_path / "store" / "tiny" / "_staging"
    for path in staging.glob("*-verify"):
        path.unlink()  # what a run before the verify stage left behind
    staged = sorted(p.name.rsplit("-", 1)[1] for p in staging.iterdir())
    assert staged.count("generate") == 2 and "screen" in staged and "verify" not in staged, staged
    finished = {p.name.rsplit("-", 1)[0] for p in staging.glob("*-validate")}
    again = StubPool()
    summary = _drive(recipe, tmp_path / "store", again)
    assert summary["batches_resumed"] == len(finished)
    assert again.generation_requests == 4, "only the batch whose generation failed is generated again"
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"] == 12
    assert summary["accepted"] > 0


@pytest.mark.parametrize("seeds, options, expected", [
    ([{"question": "What is 2 + 3?", "topic": "sums"}], {},
     "verification[0] (math_answer) needs seed field 'answer'; "),
    (SEEDS, {"tolerance": 0.1},
     "verification[0].options.tolerance: the math_answer verifier takes no such option (its options: none)"),
])
def test_the_cli_exits_2_with_one_line_for_the_real_math_answer(tmp_path, seeds, options, expected):
    """`synthfactory run` as a user runs it, with the registered math_answer verifier: one line,
    exit 2, before Ray, Prefect or any engine starts."""
    import subprocess

    from tests.conftest import cli_command

    recipe = _recipe(tmp_path, seeds=seeds, verification=[{"name": "answer", "method": "math_answer",
                                                           "options": options}])
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and expected in err
    if not options:
        assert err.endswith("math.jsonl has: question, topic")
    assert not (tmp_path / "store").exists()


def test_report_and_card_say_no_judge_ran_for_a_verified_recipe_without_grading():
    from synthfactory.publish.card import _grading_section
    from synthfactory.publish.report import run_report_markdown

    meta = VersionMetadata.model_validate({"version": 1, "generator_model": "m", "judge_model": None,
                                           "verification": {"answer": {"method": "math_answer", "checked": 4,
                                                                       "passed": 1, "rate": 0.25}}})
    report = run_report_markdown(meta)
    assert "no judge ran" in report and "judge `None`" not in report and "Judges: -" not in report
    assert "Verifier `answer` (`math_answer`): 1 of 4 checked passed (0.250)" in report
    assert "No judge ran" in "\n".join(_grading_section(meta, {}))
