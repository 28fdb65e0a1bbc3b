"""Method logic with a stub chat function: round sequencing, parsing, pair selection, schema
validation, role order. No engine: these are about the methods, and run in seconds."""

from __future__ import annotations

import json
import subprocess

import pytest

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.errors import RecipeError
from synthfactory.grading import JudgeScore
from synthfactory.inputs.seeds import load_seeds
from synthfactory.methods import METHODS, method_for
from synthfactory.recipe import load_recipe
from synthfactory.run.plan import plan_run
from synthfactory.run.stages import generate_batch, grade_batch
from tests.conftest import cli_command, make_recipe


def _plan(tmp_path, **overrides):
    loaded = load_recipe(make_recipe(tmp_path, **overrides))
    return loaded, plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)


def _result(text: str) -> ChatResult:
    return ChatResult(text=text, finish_reason="stop", prompt_tokens=3, completion_tokens=5, latency_s=0.01)


class StubChat:
    """Answers each request with `answer(request)`; records every call (one per round)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[list[ChatRequest]] = []

    def __call__(self, spec, requests):
        self.calls.append(list(requests))
        answers = [self.answer(r) for r in requests]
        return [_result(a) if isinstance(a, str) else a for a in answers]


def _user(request: ChatRequest) -> str:
    return request.messages[-1]["content"]


def test_every_registered_method_imports_under_its_own_name():
    from synthfactory.methods import method_class

    for name in METHODS:
        assert method_class(name).name == name


def test_text_rows_are_unchanged_one_request_per_item(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1)
    chat = StubChat(lambda r: f"An answer to: {_user(r)}")
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert len(chat.calls) == 1 and len(chat.calls[0]) == 4
    row = state.rows[0]
    assert row["text"] == f"An answer to: {row['prompt']}"
    assert chat.calls[0][0].seed == plan.batches[0].items[0].sampling_seed
    assert "messages" not in row  # text rows keep the original columns


def test_instruct_writes_an_instruction_then_answers_it_in_a_second_round(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1, generation__method="instruct",
                         generation__system_prompt="Be brief.")

    def answer(request):
        if "write one instruction" in request.messages[0]["content"].lower():
            return "Instruction: Describe " + _user(request).split()[1] + " in detail."
        return "Here is the answer."

    chat = StubChat(answer)
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert [len(c) for c in chat.calls] == [4, 4]  # two rounds, the whole batch in each
    row = state.rows[0]
    assert row["instruction"].startswith("Describe ") and row["response"] == row["text"] == "Here is the answer."
    assert row["messages"] == [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": row["instruction"]},
                               {"role": "assistant", "content": "Here is the answer."}]
    assert chat.calls[1][0].messages[-1]["content"] == row["instruction"]
    assert method_for(loaded.recipe).judge_items(row) == [(row["instruction"], row["text"])]


def test_instruct_empty_instruction_is_quarantined_and_costs_no_second_request(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1, generation__method="instruct")
    chat = StubChat(lambda r: "   " if "why the sky" in _user(r) else "Some text here.")
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert [len(c) for c in chat.calls] == [4, 3]
    assert [r["reason"] for r in state.quarantined] == ["empty_generation: instruction"]
    assert len(state.rows) == 3


def _conversation(tmp_path, turns, answer):
    loaded, plan = _plan(tmp_path, batches__count=1, batches__size=2, generation__method="conversation",
                         generation__method_options={"turns": turns})
    chat = StubChat(answer)
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    return loaded, state, chat


def test_conversation_alternates_simulated_user_and_assistant_for_n_turns(tmp_path):
    counter = iter(range(1000))
    loaded, state, chat = _conversation(
        tmp_path, 3,
        lambda r: f"User: question {next(counter)} about something new"
        if r.messages[0]["content"].startswith("You play the user")
        else f"answer {next(counter)} with different words entirely")
    assert [len(c) for c in chat.calls] == [2] * 6
    row = state.rows[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * 3
    assert row["turns"] == 3 and not row["messages"][0]["content"].startswith("User:")
    assert "Conversation so far" in chat.calls[2][0].messages[-1]["content"]  # the sim sees the dialogue
    assert method_for(loaded.recipe).screen(row) is None


def test_conversation_screens_early_end_repeats_and_role_breaks(tmp_path):
    method = method_for(load_recipe(make_recipe(tmp_path, generation__method="conversation",
                                                generation__method_options={"turns": 2})).recipe)

    def row(*pairs):
        messages = [{"role": role, "content": text} for role, text in pairs]
        return {"messages": messages, "turns": sum(m["role"] == "assistant" for m in messages)}

    assert method.screen(row(("user", "hi there friend"), ("assistant", "hello, how can I help")))\
        == "ended_early: 1 of 2 turns"
    assert method.screen(row(("user", "what is rain"), ("assistant", "water falling from clouds"),
                             ("user", "what is rain"), ("assistant", "as I said, it falls"))).startswith(
        "repeated_turn: message 3 repeats message 1")
    assert method.screen(row(("user", "tell me about tides"), ("assistant", "the moon pulls the sea"),
                             ("user", "Assistant: the sun also matters"), ("assistant", "indeed it does, a bit"))) \
        == "role_order: message 3 (user) speaks as the assistant"
    assert method.screen(row(("assistant", "I start"), ("user", "odd order here"))).startswith("role_order: message 1")


def test_conversation_that_stops_early_keeps_what_was_said(tmp_path):
    loaded, state, chat = _conversation(
        tmp_path, 3, lambda r: "" if "Assistant:" in _user(r) else (
            "a user question" if r.messages[0]["content"].startswith("You play the user") else "an answer"))
    assert [len(c) for c in chat.calls] == [2, 2, 2]  # the third round ends it; no more requests
    assert all(r["turns"] == 1 for r in state.rows)
    assert method_for(loaded.recipe).screen(state.rows[0]) == "ended_early: 1 of 3 turns"


def _score(value: float) -> JudgeScore:
    return JudgeScore(raw={"accuracy": value}, normalised={"accuracy": value}, score=value)


def test_preference_generates_k_candidates_and_keeps_pairs_with_margin(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1, batches__size=2, generation__method="preference",
                         generation__method_options={"candidates": 3, "temperatures": [0.2, 0.7, 1.2],
                                                     "min_margin": 0.3},
                         grading__method="json")
    chat = StubChat(lambda r: f"candidate at temperature {r.temperature}")
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert len(chat.calls) == 1 and [r.temperature for r in chat.calls[0][:3]] == [0.2, 0.7, 1.2]
    assert len({r.seed for r in chat.calls[0][:3]}) == 3
    assert state.rows[0]["candidates"] == [f"candidate at temperature {t}" for t in (0.2, 0.7, 1.2)]

    grades = {"0.2": 5, "0.7": 3, "1.2": 1}  # first row: margin 1.0; second row: all equal below

    def judge(request):
        text = _user(request)
        grade = grades[text.split("temperature ")[1].split()[0]] if "row two" not in text else 3
        return json.dumps({"accuracy": grade, "clarity": grade})

    rows = [state.rows[0], {**state.rows[1], "prompt": "row two"}]
    graded = grade_batch(plan, type(state)(**{**state.__dict__, "rows": rows}), loaded.recipe, StubChat(judge))
    assert len(graded.rows) == 1 and len(graded.rejected) == 1
    pair = graded.rows[0]
    assert pair["chosen"][-1] == {"role": "assistant", "content": "candidate at temperature 0.2"}
    assert pair["rejected"][-1]["content"] == "candidate at temperature 1.2"
    assert pair["chosen"][:-1] == pair["rejected"][:-1] == [{"role": "user", "content": pair["prompt"]}]
    assert (pair["score_chosen"], pair["score_rejected"], pair["margin"], pair["score"]) == (1.0, 0.0, 1.0, 1.0)
    assert graded.rejected[0]["reason"] == "low_margin: 0.000 < 0.300"


def test_preference_options_are_checked():
    from synthfactory.methods import validate_options

    with pytest.raises(ValueError, match="one per candidate"):
        validate_options("preference", {"candidates": 2, "temperatures": [0.5]})


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"},
                                            "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["name", "year"], "additionalProperties": False}


def test_structured_rows_validate_and_fields_become_columns(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1, generation__method="structured",
                         generation__method_options={"schema": SCHEMA})
    answers = iter(['{"name": "Ada", "year": 1843, "tags": ["math"]}', '{"name": "Bob", "year": "soon"}',
                    '{"name": "Cy", "year": 19', '{"name": "Di", "year": 2000, "extra": 1}'])
    chat = StubChat(lambda r: next(answers))
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert chat.calls[0][0].json_schema == SCHEMA  # constrained decoding on every engine
    assert "fields: name (string), year (integer), tags (array)" in _user(chat.calls[0][0])
    assert [(r["name"], r["year"], r["tags"]) for r in state.rows] == [("Ada", 1843, '["math"]')]
    assert {r["reason"] for r in state.quarantined} == {
        "schema_violation: $: Additional properties are not allowed ('extra' was unexpected)",
        "schema_violation: $: not JSON (Expecting ',' delimiter)",
        "schema_violation: $.year: 'soon' is not of type 'integer'"}
    assert {"json", "name", "year", "tags"} <= {f.name for f in method_for(loaded.recipe).columns}


def test_structured_schema_from_a_pydantic_model(tmp_path, monkeypatch):
    (tmp_path / "rowmodels.py").write_text(
        "from pydantic import BaseModel, Field\n"
        "class Fact(BaseModel):\n    subject: str\n    confidence: float = Field(ge=0, le=1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded, plan = _plan(tmp_path, batches__count=1, generation__method="structured",
                         generation__method_options={"model": "rowmodels:Fact"})
    answers = iter(['{"subject": "tides", "confidence": 0.9}', '{"subject": "x", "confidence": 2}'] * 2)
    state = generate_batch(plan, plan.batches[0], loaded.recipe, StubChat(lambda r: next(answers)))
    assert [r["subject"] for r in state.rows] == ["tides", "tides"]
    assert {r["reason"] for r in state.quarantined} == {
        "schema_violation: $.confidence: 2 is greater than the maximum of 1"}


def test_evol_rewrites_over_rounds_then_answers_with_lineage(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1, batches__size=2, generation__method="evol",
                         generation__method_options={"rounds": 2})

    def answer(request):
        text = _user(request)
        if "#Given Prompt#" in text:
            given = text.split("#Given Prompt#:\n")[1].split("\n\n#Rewritten")[0]
            return f"#Rewritten Prompt#: {given} and compare case{len(given)} with example{len(given)} step by step"
        return "A full answer."

    chat = StubChat(answer)
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert [len(c) for c in chat.calls] == [2, 2, 2]
    row = state.rows[0]
    steps = json.loads(row["evolution"])
    assert [s["round"] for s in steps] == [1, 2] and row["evol_operations"] == [s["operation"] for s in steps]
    assert row["instruction"] == steps[-1]["instruction"] and row["instruction"].startswith(steps[0]["instruction"])
    assert steps[0]["instruction"].startswith(row["prompt"])
    assert row["messages"][-2:] == [{"role": "user", "content": row["instruction"]},
                                    {"role": "assistant", "content": "A full answer."}]


@pytest.mark.parametrize("rewrite,reason", [
    (lambda given: given, "copy of the input"),
    (lambda given: "I'm sorry, but I cannot help with rewriting that prompt today at all.", "refusal"),
    (lambda given: "Explain.", "shorter than the input"),
])
def test_evol_failed_rewrites_are_rejected_with_round_and_operation(tmp_path, rewrite, reason):
    loaded, plan = _plan(tmp_path, batches__count=1, batches__size=2, generation__method="evol",
                         generation__method_options={"rounds": 2, "operations": ["deepen"]})

    def answer(request):
        return rewrite(_user(request).split("#Given Prompt#:\n")[1].split("\n\n#Rewritten")[0])

    chat = StubChat(answer)
    state = generate_batch(plan, plan.batches[0], loaded.recipe, chat)
    assert len(chat.calls) == 1 and not state.rows and not state.quarantined
    assert all(r["reason"].startswith(f"evol_failed: round 1 (deepen): {reason}") for r in state.rejected)


def test_engine_error_in_a_later_round_quarantines_with_the_cause(tmp_path):
    loaded, plan = _plan(tmp_path, batches__count=1, generation__method="instruct")

    def answer(request):
        if request.messages[0]["content"].startswith("You write one instruction"):
            return "Describe a thing."
        return ChatResult(text="", finish_reason="error", prompt_tokens=0, completion_tokens=0, latency_s=0.0,
                          error="engine_error: HTTP 400 context too long")

    state = generate_batch(plan, plan.batches[0], loaded.recipe, StubChat(answer))
    assert {r["reason"] for r in state.quarantined} == {"engine_error: HTTP 400 context too long"}
    assert all(r["prompt_tokens"] == 3 for r in state.quarantined)  # the first round's cost is kept


@pytest.mark.parametrize("method,options,expected", [
    ("nonsense", {}, "generation.method: unknown method 'nonsense'; known: conversation, evol, instruct, "),
    ("conversation", {"turns": 40}, "generation.method_options.turns: Input should be less than or equal to 10"),
    ("conversation", {"turnz": 2}, "generation.method_options.turnz: the conversation method takes no such option "
                                   "(its options: turns, user_system)"),
    ("structured", {"schema": {"type": "object", "properties": {"a": {"type": "strng"}}}},
     "generation.method_options: schema: not a valid JSON Schema at properties/a/type"),
    ("structured", {"schema": {"type": "object", "properties": {"id": {"type": "string"}}}},
     "schema: properties ['id'] clash with lineage/quality columns"),
    ("structured", {"model": "no_such_module:Row"}, "model: cannot import 'no_such_module:Row'"),
])
def test_bad_method_or_options_is_one_recipe_error(tmp_path, method, options, expected):
    with pytest.raises(RecipeError) as caught:
        load_recipe(make_recipe(tmp_path, generation__method=method, generation__method_options=options))
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_cli_exits_2_with_one_line_for_an_unknown_method(tmp_path):
    recipe = make_recipe(tmp_path, generation__method="dialogue")
    done = subprocess.run(cli_command("run", str(recipe)), capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "unknown method 'dialogue'" in done.stderr
