"""Fast tests of the verifiers math_answer, json_schema and grounded on fixed responses (no engine)."""

from __future__ import annotations

import threading
import time

import pytest

from synthfactory.verify.base import Claim, Verdict


# -- math_answer -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def math():
    from synthfactory.verify.math_answer import MathAnswerVerifier

    return MathAnswerVerifier()


def check(verifier, response: str, answer) -> Verdict:
    return verifier.verify(Claim(response=response, seed={"answer": answer}))


@pytest.mark.parametrize("response, answer", [
    ("Tom has 5 + 7 = 12 apples.\n\\boxed{12}", 12),
    ("So the total is \\boxed{12} apples, as computed above.", "12"),
    ("Answer: 12", 12),
    ("**Answer:** 12", 12),
    ("**Answer**: $12", "12"),
    ("Final answer: 12 apples.", 12),
    ("Answer: \\$12.50", 12.5),
    ("Answer: 1,000", 1000),
    ("Answer: 1000", "1,000"),
    ("\\boxed{1{,}000}", 1000),
    ("Answer: 0.5", "1/2"),
    ("Answer: 1/2", 0.5),
    ("\\boxed{\\frac{1}{2}}", 0.5),
    ("\\boxed{\\dfrac12}", "1/2"),
    ("Answer: 0.5", "\\frac{1}{2}"),
    ("Answer: -3", -3),
    ("\\boxed{-\\frac{3}{4}}", "-0.75"),
    ("Answer: 12.0", 12),
    ("\\boxed{x = 3}", 3),
    ("\\boxed{\\text{12 apples}}", 12),
    ("Answer: 50%", 50),
    ("answer:\n\n12", 12),
    ("Answer: 7 + 5 = 12", 12),  # an equation counts as its right side when it holds
])
def test_math_right_answers_pass(math, response, answer):
    verdict = check(math, response, answer)
    assert verdict.passed, verdict
    assert verdict.reason == "ok"


@pytest.mark.parametrize("response, answer", [
    ("\\boxed{13}", 12),
    ("Answer: 3", -3),
    ("Answer: 12.000001", 12),
    ("Answer: 0.33", "1/3"),
    ("Answer: 11 or 12", 12),  # a hedge is not an answer
    ("\\boxed{11, 12}", 12),
    ("Answer: 7 + 5 = 13", 12),
    ("Answer: 11 = 12", 12),  # math-verify reads the right side; a false equation still fails
    ("Answer: banana", 12),
])
def test_math_wrong_answers_fail(math, response, answer):
    verdict = check(math, response, answer)
    assert not verdict.passed
    assert verdict.reason.startswith("wrong_answer: got "), verdict.reason
    assert f"expected {answer}" in verdict.reason


def test_math_wrong_reason_and_details(math):
    verdict = check(math, "Work...\nThe sum is \\boxed{13}.", 12)
    assert verdict.reason == "wrong_answer: got 13, expected 12"
    assert verdict.details == {"extracted": "13", "source": "boxed", "expected": "12"}


def test_math_last_of_several_answers_wins(math):
    assert check(math, "First \\boxed{10}, then I fix it: \\boxed{12}", 12).passed
    assert not check(math, "First \\boxed{12}, then I change it: \\boxed{10}", 12).passed
    assert check(math, "Answer: 10\nWait, recount.\nAnswer: 12", 12).passed
    assert not check(math, "Answer: 12\nAnswer: 10", 12).passed
    # a box beats an answer line wherever it sits
    verdict = check(math, "\\boxed{12}\nAnswer: 10", 12)
    assert verdict.passed and verdict.details["source"] == "boxed"


def test_math_nested_braces_in_box(math):
    verdict = check(math, "thus \\boxed{\\frac{\\sqrt{4}}{4}} in the end", "1/2")
    assert verdict.passed
    assert verdict.details["extracted"] == "\\frac{\\sqrt{4}}{4}"


@pytest.mark.parametrize("response", [
    "The answer is 12.",  # not a final answer line, by design
    "I think it is twelve",
    "",
    "answers: 12",
])
def test_math_no_final_answer(math, response):
    verdict = check(math, response, 12)
    assert not verdict.passed
    assert verdict.reason == "no_final_answer"
    assert verdict.details["source"] == "none"


@pytest.mark.parametrize("response", [
    "So \\boxed{12",  # cut off: does not fall back to an earlier box
    "\\boxed{12} and then \\boxed{1",
    "Answer: {",
    "Answer: \\frac{1}{",
    "Answer: " + "1+" * 200 + "1",  # longer than the parser is given
])
def test_math_malformed_is_unparseable(math, response):
    verdict = check(math, response, 12)
    assert not verdict.passed
    assert verdict.reason.startswith("unparseable_answer"), verdict.reason


@pytest.mark.parametrize("response", [
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{1000000!}",
    "\\boxed{12^{100000}}",
    "\\boxed{\\sum_{i=1}^{10^{9}} i}",
])
def test_math_costly_answers_are_refused_fast(math, response):
    start = time.perf_counter()
    verdict = check(math, response, 12)
    assert time.perf_counter() - start < 2.0
    assert not verdict.passed
    assert verdict.reason.startswith("unparseable_answer: too costly"), verdict.reason


def test_math_bad_expected_is_a_reason_not_a_crash(math):
    assert check(math, "\\boxed{12}", None).reason.startswith("unparseable_expected")
    assert check(math, "\\boxed{12}", True).reason.startswith("unparseable_expected")
    assert check(math, "\\boxed{12}", "{").reason.startswith("unparseable_expected")


def test_math_runs_in_worker_threads(math):
    """math-verify's own timeouts are signal based (main thread only); ours must not need them."""
    out: dict[str, object] = {}

    def work():
        try:
            out["verdicts"] = math.verify_many([Claim("\\boxed{\\frac{1}{2}}", {"answer": 0.5}),
                                                Claim("Answer: 3", {"answer": 4})])
        except BaseException as exc:  # noqa: BLE001 - the assertion reports it
            out["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert "error" not in out, out.get("error")
    assert [v.passed for v in out["verdicts"]] == [True, False]


# -- json_schema -------------------------------------------------------------------------------
BOOK = {"type": "object", "additionalProperties": False, "required": ["title", "year"],
        "properties": {"title": {"type": "string"}, "year": {"type": "integer"},
                       "tags": {"type": "array", "items": {"type": "string"}}}}


@pytest.fixture(scope="module")
def schema_verifier():
    from synthfactory.verify.json_schema import JsonSchemaVerifier

    return JsonSchemaVerifier(JsonSchemaVerifier.Options(schema=BOOK))


@pytest.mark.parametrize("response", [
    '{"title": "Dune", "year": 1965}',
    '  {"title": "Dune", "year": 1965, "tags": ["sf"]}\n',
    '```json\n{"title": "Dune", "year": 1965}\n```',
])
def test_json_schema_valid_objects_pass(schema_verifier, response):
    verdict = schema_verifier.verify(Claim(response))
    assert verdict.passed and verdict.reason == "ok", verdict


@pytest.mark.parametrize("response, reason", [
    ('{"title": "Dune", "year": "soon"}', "schema_violation: $.year: 'soon' is not of type 'integer'"),
    ('{"title": "Dune"}', "schema_violation: $: 'year' is a required property"),
    ('{"title": "Dune", "year": 1965, "tags": ["sf", 3]}', "schema_violation: $.tags[1]: 3 is not of type 'string'"),
    ('{"title": "Dune", "year": 1965, "extra": 1}',
     "schema_violation: $: Additional properties are not allowed ('extra' was unexpected)"),
    ('{"title": "Dune", "year": 19', "schema_violation: $: not JSON (Expecting ',' delimiter)"),
    ("Here is the book: Dune", "schema_violation: $: not JSON (Expecting value)"),
    ("", "schema_violation: $: not JSON (Expecting value)"),
    ('[{"title": "Dune", "year": 1965}]', "schema_violation: $: [{'title': 'Dune', 'year': 1965}] is not of type 'object'"),
])
def test_json_schema_violations_name_path_and_what(schema_verifier, response, reason):
    verdict = schema_verifier.verify(Claim(response))
    assert not verdict.passed
    assert verdict.reason == reason


def test_json_schema_requires_an_object_even_when_the_schema_does_not():
    from synthfactory.verify.json_schema import JsonSchemaVerifier

    verifier = JsonSchemaVerifier(JsonSchemaVerifier.Options(schema={"type": ["object", "array"]}))
    assert verifier.verify(Claim("{}")).passed
    assert verifier.verify(Claim("[1]")).reason == "schema_violation: $: not a JSON object (a list)"


def test_json_schema_options_are_checked_at_load():
    from pydantic import ValidationError

    from synthfactory.verify.json_schema import JsonSchemaVerifier

    with pytest.raises(ValidationError, match="not a valid JSON Schema at type"):
        JsonSchemaVerifier.Options(schema={"type": "objekt"})
    with pytest.raises(ValidationError, match="schema"):
        JsonSchemaVerifier.Options()
    with pytest.raises(ValidationError, match="extra"):
        JsonSchemaVerifier.Options(schema=BOOK, strict=True)


def test_json_schema_and_structured_method_share_one_reason():
    """The structured method quarantines with the very function the verifier uses."""
    from synthfactory.engines.base import ChatResult
    from synthfactory.methods.structured import StructuredMethod, StructuredOptions
    from synthfactory.verify.json_schema import JsonSchemaVerifier

    method = StructuredMethod(StructuredOptions(schema=BOOK), generation=None)  # parse reads no generation config
    verifier = JsonSchemaVerifier(JsonSchemaVerifier.Options(schema=BOOK))
    for text in ['{"title": "Dune", "year": "soon"}', '{"title": 1', '{"title": "Dune"}']:
        failed = method.parse(None, [ChatResult(text, "stop", 0, 0, 0.0)])
        assert failed.reason == verifier.verify(Claim(text)).reason
