"""Fast tests of the verifiers math_answer, math_working, json_schema and grounded on fixed responses (no engine)."""

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
    "So Sam has 12 apples.",  # not an explicit answer statement
    "5 + 7 = 12",  # nor is `= N` at the end
    "The answer is simply the number of apples left.",  # no number stated
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
        except BaseException as exc:  # the assertion reports it
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
    ('[{"title": "Dune", "year": 1965}]',
     "schema_violation: $: [{'title': 'Dune', 'year': 1965}] is not of type 'object'"),
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


# -- grounded (real all-MiniLM-L6-v2 embeddings, loaded once per process) ---------------------
# From the Python tutorial, "More Control Flow Tools" (PSF License 2.0), lightly condensed.
RANGE_DOCS = (
    "If you do need to iterate over a sequence of numbers, the built-in function range() comes in handy. "
    "It generates arithmetic progressions. The given end point is never part of the generated sequence; "
    "range(10) generates 10 values, the legal indices for items of a sequence of length 10. "
    "It is possible to let the range start at another number, or to specify a different increment "
    "(even negative; sometimes this is called the 'step'). To iterate over the indices of a sequence, "
    "you can combine range() and len(). In most such cases, however, it is convenient to use the "
    "enumerate() function. The object returned by range() behaves as if it is a list, but in fact it "
    "isn't; it is an object which returns the successive items of the desired sequence when you iterate "
    "over it, and it saves space. Since Python 3, range_iterator objects are created by iter(range(1_000)).")


@pytest.fixture(scope="module")
def grounded():
    from synthfactory.verify.grounded import GroundedVerifier

    return GroundedVerifier()


def ground(verifier, response: str, source: str = RANGE_DOCS) -> Verdict:
    return verifier.verify(Claim(response=response, seed={"source": source}))


@pytest.mark.parametrize("response", [
    "The built-in function range() generates arithmetic progressions. "
    "The end point is never part of the generated sequence, so range(10) generates 10 values.",
    "To iterate over the indices of a sequence, combine `range()` with `len()`. "
    "Often it is more convenient to use the enumerate() function.",
    "The object that range() returns is not really a list; it returns the items of the sequence "
    "when you iterate over it, which saves space.",
    "- The given end point is never part of the sequence that range() generates.\n"
    "- You can let the range start at another number or use a different increment, called the 'step'.",
])
def test_grounded_supported_answers_pass(grounded, response):
    verdict = ground(grounded, response)
    assert verdict.passed, verdict
    assert all(s["best_similarity"] >= 0.7 for s in verdict.details["sentences"])


@pytest.mark.parametrize("response, reason", [
    ("The built-in function range() generates arithmetic progressions; range(10) generates 11 values.",
     "unsupported_number: 11"),
    ("Since Python 3.12, range() generates arithmetic progressions.", "unsupported_number: 3.12"),
    ("The built-in function range() was designed by Guido to generate arithmetic progressions.",
     "unsupported_name: Guido"),
    ("To iterate over the indices of a sequence, combine range() with `itertools.count`.",
     "unsupported_identifier: itertools.count"),
    ("To iterate over the indices of a sequence, combine range() and len() or range_len().",
     "unsupported_identifier: range_len"),
    ("To iterate over the indices of a sequence, combine range() and os.path.getsize.",
     "unsupported_identifier: os.path.getsize"),
    ("The increment can be negative; this is sometimes called the 'stride'.", "unsupported_quote: stride"),
    ("The built-in function range() generates arithmetic progressions. "
     "Bicycles stay upright because their wheels act as gyroscopes.",
     "unsupported_sentence: Bicycles stay upright because their wheels act as gyroscopes"),
])
def test_grounded_names_the_first_unsupported_item(grounded, response, reason):
    verdict = ground(grounded, response)
    assert not verdict.passed
    assert verdict.reason == reason


def test_grounded_identifier_case_is_exact_and_numbers_compare_as_numbers(grounded):
    from synthfactory.verify.grounded import Item, SourceIndex

    index = SourceIndex(RANGE_DOCS + " It holds 1,000 items, 2.50 each.")
    assert index.has(Item("number", "1000", 0)) and index.has(Item("number", "2.5", 0))
    assert index.has(Item("number", "1_000".replace("_", ""), 0))
    assert not index.has(Item("number", "1001", 0))
    assert index.has(Item("identifier", "range_iterator", 0))
    assert not index.has(Item("identifier", "Range_iterator", 0))
    assert index.has(Item("name", "python", 0))  # a name may start a sentence in the source


def test_grounded_details_and_first_word_of_a_sentence(grounded):
    verdict = ground(grounded, "Enumerate() is convenient. It generates arithmetic progressions, as "
                               "range() does.\n\nRange objects save space.")
    assert verdict.reason.startswith("unsupported_identifier: Enumerate"), verdict.reason  # a call, exact case
    verdict = ground(grounded, "It generates arithmetic progressions.\n\nThe end point is never part of the "
                               "generated sequence. Ok.")
    assert verdict.passed, verdict
    assert [s["text"] for s in verdict.details["sentences"]] == [  # "Ok." is too short to check
        "It generates arithmetic progressions.", "The end point is never part of the generated sequence."]
    assert verdict.details["threshold"] == 0.7 and verdict.details["min_similarity"] >= 0.7


def test_grounded_off_topic_answer_fails_on_its_sentences(grounded):
    verdict = ground(grounded, "the printing press was invented in the sixteenth century by monks.")
    assert verdict.reason.startswith("unsupported_sentence: the printing press")
    assert verdict.details["sentences"][0]["best_similarity"] < 0.3


def test_grounded_empty_response_and_threshold_option():
    from pydantic import ValidationError

    from synthfactory.verify.grounded import GroundedVerifier

    assert ground(GroundedVerifier(), "  ").reason == "empty_response"
    lax = GroundedVerifier(GroundedVerifier.Options(threshold=0.0))
    assert ground(lax, "It is an object that saves space, like a sandwich.").passed
    with pytest.raises(ValidationError):
        GroundedVerifier.Options(threshold=1.5)


def test_grounded_verify_many_embeds_once(grounded, monkeypatch):
    from synthfactory.quality.embed import shared_embedder

    embedder = shared_embedder()
    calls: list[int] = []
    encode = embedder.encode_texts
    monkeypatch.setattr(embedder, "encode_texts", lambda texts: calls.append(len(texts)) or encode(texts))
    claims = [Claim("It generates arithmetic progressions.", {"source": RANGE_DOCS}),
              Claim("Bicycles stay upright because of their wheels.", {"source": RANGE_DOCS}),
              Claim("It returns the items of the sequence when you iterate over it.", {"source": RANGE_DOCS})]
    verdicts = grounded.verify_many(claims)
    assert len(calls) == 1  # every sentence of every claim and source in one call
    assert [v.passed for v in verdicts] == [True, False, True]
    assert [v.reason for v in verdicts] == [v.reason for v in map(grounded.verify, claims)]


# Hand-written answers (constructed) to five passages of corpus:python-docs: what the default
# threshold was picked on (see synthfactory/verify/grounded.py).
PASSAGES = {
    "tuples": "Tuples are immutable, meaning that once a tuple has been created, you can't replace any of its "
              "elements with a new value. Lists are mutable, meaning that you can always change a list's "
              "elements. Only immutable elements can be used as dictionary keys, and hence only tuples and not "
              "lists can be used as keys.",
    "with": "The with statement is used to wrap the execution of a block with methods defined by a context "
            "manager (see section context-managers). This allows common try... except... finally usage "
            "patterns to be encapsulated for convenient reuse.",
    "gc": "Python's support for detecting and collecting garbage which involves circular references requires "
          "support from object types which are \"containers\" for other objects which may also be containers. "
          "Types which do not store references to other objects, or which only store references to atomic types "
          "(such as numbers or strings), do not need to provide any explicit support for garbage collection.",
    "genexp": "Some simple generators can be coded succinctly as expressions using a syntax similar to list "
              "comprehensions but with parentheses instead of square brackets. These expressions are designed "
              "for situations where the generator is used right away by an enclosing function. Generator "
              "expressions are more compact but less versatile than full generator definitions and tend to be "
              "more memory friendly than equivalent list comprehensions.",
    "interp": "The Python interpreter and the extensive standard library are freely available in source or "
              "binary form for all major platforms from the Python web site, https://www.python.org/, and may "
              "be freely distributed. The same site also contains distributions of and pointers to many free "
              "third party Python modules, programs and tools, and additional documentation.",
}
MEASURED = [
    ("tuples", True, "Once a tuple is created, its elements cannot be replaced."),
    ("tuples", True, "You can change the elements of a list because lists are mutable."),
    ("tuples", True, "Tuples can be used as dictionary keys but lists cannot."),
    ("tuples", False, "Tuples are faster than lists because they are stored in contiguous memory."),
    ("tuples", False, "Lists can be used as dictionary keys if they are sorted first."),
    ("tuples", False, "Tuples were added to Python to support functional programming."),
    ("with", True, "The with statement wraps a block so that methods of a context manager run around it."),
    ("with", True, "It lets try, except and finally patterns be packaged for easy reuse."),
    ("with", False, "The with statement makes file operations run in a separate thread."),
    ("with", False, "A context manager automatically retries the block when an exception occurs."),
    ("gc", True, "Objects that are containers for other objects need support for garbage collection of "
                 "circular references."),
    ("gc", True, "Types that only hold numbers or strings do not need to support garbage collection."),
    ("gc", False, "Python's garbage collector runs every ten seconds to free memory."),
    ("gc", False, "Containers must be registered with the operating system before they can be collected."),
    ("genexp", True, "Generator expressions look like list comprehensions but use parentheses instead of "
                     "square brackets."),
    ("genexp", True, "They are usually more memory friendly than the equivalent list comprehension."),
    ("genexp", False, "Generator expressions are always faster than list comprehensions."),
    ("genexp", False, "Generator expressions can be indexed like lists."),
    ("interp", True, "The interpreter and the standard library can be downloaded for free from the Python web site."),
    ("interp", True, "The site also links to third party modules and extra documentation."),
    ("interp", False, "The Python interpreter requires a paid license for commercial use."),
    ("interp", False, "The standard library is only available for Linux."),
]


def test_grounded_default_threshold_on_the_measured_answers(grounded):
    """At 0.7: 9 of 11 supported sentences kept, 9 of 11 on-topic unsupported ones stopped."""
    from synthfactory.verify.grounded import threshold_from_labels

    verdicts = grounded.verify_many([Claim(text, {"source": PASSAGES[p]}) for p, _, text in MEASURED])
    good = [g for _, g, _ in MEASURED]
    kept = [v.details["min_similarity"] >= 0.7 for v in verdicts]
    assert sum(k for k, g in zip(kept, good, strict=True) if g) == 9
    assert sum(not k for k, g in zip(kept, good, strict=True) if not g) == 9
    picked = threshold_from_labels([v.details["min_similarity"] for v in verdicts], good, target_precision=0.8)
    assert picked is not None and 0.6 < picked["threshold"] <= 0.8
    assert picked["precision"] >= 0.8


def test_threshold_from_labels_picks_the_lowest_precise_threshold():
    from synthfactory.verify.grounded import threshold_from_labels

    sims = [0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4]
    good = [True, True, False, True, True, False, True, False]
    assert threshold_from_labels(sims, good, target_precision=0.75) == {
        "threshold": 0.7, "precision": 0.8, "recall": 0.8}
    assert threshold_from_labels(sims, good, target_precision=1.0) == {
        "threshold": 0.85, "precision": 1.0, "recall": 0.4}
    assert threshold_from_labels([0.5, 0.6], [False, False], target_precision=0.5) is None


def test_calibrate_verifier_picks_the_grounded_threshold(tmp_path, capsys):
    """`synthfactory calibrate RECIPE --labels FILE --verifier NAME` on labelled rows with `source`."""
    import json

    from synthfactory.cli import main

    (tmp_path / "seeds.jsonl").write_text(json.dumps({"question": "q", "source": RANGE_DOCS}) + "\n")
    (tmp_path / "suite.json").write_text(json.dumps({"name": "s", "expectations": []}))
    (tmp_path / "r.yaml").write_text(
        "name: grounded_cal\nseeds: {path: seeds.jsonl, format: jsonl}\n"
        "generation: {method: text, prompt_template: '{{ question }}'}\n"
        "verification: [{name: cited, method: grounded, options: {threshold: 0.5}}]\n"
        "validation: {suite: suite.json}\n")
    rows = [{"prompt": p, "text": t, "label": "good" if g else "bad", "source": PASSAGES[p]} for p, g, t in MEASURED]
    rows.append({"prompt": "x", "text": "Since 1989 tuples are faster.", "label": "bad", "source": PASSAGES["tuples"]})
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = ["calibrate", str(tmp_path / "r.yaml"), "--labels", str(tmp_path / "labels.jsonl"),
            "--verifier", "cited", "--target-precision", "0.8", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 23 and report["good"] == 11
    assert report["item_failures"] == 3  # "Python" and "Linux" are not in their passages, nor is 1989
    assert report["at_threshold"]["threshold"] == 0.5
    assert 0.6 < report["threshold_for_target_precision"]["threshold"] <= 0.8
    assert main(args[:-1]) == 0
    assert "options.threshold 0.7" in capsys.readouterr().out
    assert main([*args[:4], "--verifier", "nope"]) == 2
    assert "--verifier nope: not a grounded check" in capsys.readouterr().err


@pytest.mark.parametrize("response", [
    "Quinn has 5 - 3 = 2 eggs.\nAnswer: 2\nQuinn doesn't have 2 eggs left.",
    "Answer:\n2\nBut wait, that is wrong.",
])
def test_math_answer_line_must_end_the_response(math, response):
    verdict = math.verify(Claim(response=response, seed={"answer": "2"}))
    assert not verdict.passed and verdict.reason == "no_final_answer: text after the Answer: line"


def test_math_answer_line_may_be_followed_by_blank_lines_only(math):
    assert math.verify(Claim(response="5 - 3 = 2\nAnswer:\n2\n\n  \n", seed={"answer": "2"})).passed


@pytest.mark.parametrize("answer", [
    r"10^{99*99*99*99*99}", r"9^{99999999999+1}", r"((10^{1000})^{1000})^{1000}", r"2^{999999999+1}",
])
def test_math_answers_that_would_run_away_are_refused(math, answer):
    verdict = math.verify(Claim(response=f"Answer: {answer}", seed={"answer": "12"}))
    assert not verdict.passed and verdict.reason.startswith("unparseable_answer: too costly"), verdict


@pytest.mark.parametrize("answer, expected", [("3 pi", "3"), ("2 x", "2"), ("5 sqrt", "5"), ("12 million", "12")])
def test_math_words_after_a_number_are_not_units(math, answer, expected):
    assert not math.verify(Claim(response=f"Answer: {answer}", seed={"answer": expected})).passed


@pytest.mark.parametrize("expected", [0.00001, 1e16, 2.5])
def test_math_float_answers_compare_as_written(math, expected):
    written = format(__import__("decimal").Decimal(repr(expected)), "f")
    assert math.verify(Claim(response=f"Answer: {written}", seed={"answer": expected})).passed


def test_math_answer_line_scan_is_linear(math):
    verdict = math.verify(Claim(response="answer" + " " * 100_000 + "x", seed={"answer": "1"}))
    assert verdict.reason == "no_final_answer"


# -- math_answer: answers stated in the model's own words ----------------------------------------
@pytest.mark.parametrize("response", [
    "Tom has 5 + 7 = 12 apples.\nThe answer is 12.",
    "the final answer is 12",
    "So, the answer is $12$.",
    "The correct answer is: 12 apples.",
    "The answer to the problem is 12",
    'Each crate holds 4.\n#### 12\nThe answer is "12".',
    "3 * 4 = 12\n#### 12",
    "The answer is 12.\n\nThe answer is 12.",
    "This is a classic puzzle. The answer is indeed 12.",
    "The answer is 10 + 2 = 12.",
    "The answer is \\frac{24}{2}.",
])
def test_math_stated_answers_pass(math, response):
    verdict = check(math, response, 12)
    assert verdict.passed, verdict
    assert verdict.details["source"] == "answer_statement"


@pytest.mark.parametrize("response", [
    "The answer might be 12.",
    "The answer could be 12.",
    "The answer is probably 12.",
    "The answer is either 11 or 12.",
    "The answer is 11 or 12.",
    "The answer is about 12.",
    "I think the answer is 12.",
    "Maybe the answer is 12.",
    "The answer is 12.\nThe answer is not 12, but it can be solved.",
])
def test_math_hedged_answers_are_not_answers(math, response):
    verdict = check(math, response, 12)
    assert not verdict.passed and verdict.reason.startswith("no_final_answer: a hedged answer"), verdict.reason


@pytest.mark.parametrize("response", [
    "The answer is 11.\nWait.\nThe answer is 12.",
    "#### 3\nThe answer is 12.",
    "The answer is 12 apples.\n#### 13",
])
def test_math_two_different_stated_answers_fail(math, response):
    verdict = check(math, response, 12)
    assert not verdict.passed and verdict.reason.startswith("no_final_answer: different answers stated"), verdict


def test_math_stated_answer_must_end_the_response_and_be_right(math):
    went_on = check(math, "The answer is 12.\n\nThis is a classic example of a lateral thinking puzzle.", 12)
    assert not went_on.passed and went_on.reason.startswith("no_final_answer: text after the answer")
    wrong = check(math, "So, the answer is 13.", 12)
    assert wrong.reason == "wrong_answer: got 13, expected 12"
    assert check(math, "The answer is 12 because 5 + 7 = 12.", 12).reason.startswith("no_final_answer")


def test_math_box_or_answer_line_decides_over_prose(math):
    """Prose is read only when the response has neither a box nor an Answer: line."""
    assert check(math, "The answer is 11.\nAnswer: 12", 12).details["source"] == "answer_line"
    assert check(math, "\\boxed{12} though the answer is 11.", 12).details["source"] == "boxed"


def test_math_stated_answer_scan_is_bounded(math):
    start = time.perf_counter()
    for response in ("The answer is 5. " * 5000, "".join(f"The answer is {i}. " for i in range(3000)),
                     "The answer is " + "1 " * 50_000 + "x", "the" + " " * 100_000 + "answer is 5"):
        math.verify(Claim(response=response, seed={"answer": "5"}))
    assert time.perf_counter() - start < 5.0


# -- math_working --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def working():
    from synthfactory.verify.math_working import MathWorkingVerifier

    return MathWorkingVerifier()


def work(verifier, response: str, prompt: str = "") -> Verdict:
    return verifier.verify(Claim(response=response, prompt=prompt))


@pytest.mark.parametrize("response", [
    "Ben has 6 - 2 = 4 books.",
    "3 × 4 = 12.",
    "So $12 + 5 = 17$ apples.",
    "4.5 * 2 = 9 dollars.",
    "2 + 3 = 5 + 1 = 6.",  # a running total
    "$4 + $5 = $9.",
    "4 apples + 5 apples = 9 apples",
    "4 boxes * 6 stickers = 24 stickers",
    "3x4=12, and 12 \\div 4 = 3.",
    "$3 \\times 4 = 12$ and \\frac{1}{2} + \\frac{1}{4} = 0.75",
    "10 / 3 = 3.33.",  # rounded to the digits written
    "1,000 + 200 = 1,200.",
    "- 3 + 4 = 7 (a list bullet)",
    "13 (total) - 1 (sticker) = 12 stickers.",
    "x = 5 + 2 = 7.",
    "**3 + 4 = 7**",
    "Tom has 3 + 4 = 7 apples.\nAnswer: 7",
])
def test_math_working_true_equations_pass(working, response):
    verdict = work(working, response)
    assert verdict.passed, verdict
    assert verdict.details["checked"] >= 1, verdict


@pytest.mark.parametrize("response, equation", [
    ("Tom has 3 + 4 = 8 apples.\nAnswer: 7", "3 + 4 = 8"),
    ("So 5 + 5 = 10. Then 10 * 2 = 21.\nAnswer: 20", "10 * 2 = 21"),
    ("3 x 4 = 13 cookies.", "3 * 4 = 13"),
    ("2 + 3 = 6 + 1 = 7.", "2 + 3 = 6 + 1 = 7"),
    ("$4 + $5 = $10.", "4 + 5 = 10"),
    ("10 / 3 = 3 each.", "10 / 3 = 3"),
    ("4 * 4.5 = 19 dollars.", "4 * 4.5 = 19"),
    ("(7/12) + (8/12) + (3/12) = 17/12 cookies.", "(7/12) + (8/12) + (3/12) = 17/12"),
    ("5 / 0 = 0 here.", "5 / 0 = 0"),
    ("14 (total) - 3 (given away) = 12 cookies.", "14 (total) - 3 (given away) = 12"),
])
def test_math_working_false_steps_fail(working, response, equation):
    verdict = work(working, response)
    assert not verdict.passed and verdict.reason == f"false_step: {equation}", verdict


@pytest.mark.parametrize("response", [
    "2 hours = 120 minutes.", "2 hours + 30 minutes = 150 minutes.", "10 divided by 2 = 5.", "1 dozen = 12.",
    "7 / 2 = 3 remainder 1.", "2^3 + 1 = 9.", "3:4 = 0.75.", "20% of 50 = 10.", "2x + 3 = 7.", "4,5 * 2 = 9.",
    "3**2 = 9.", "3 * 2 = 6!", "500 * 4 = 2",  # the last: the response ends on it, it may be cut off
])
def test_math_working_leaves_what_it_cannot_read_alone(working, response):
    verdict = work(working, response)
    assert verdict.passed and verdict.details["checked"] == 0, verdict


def test_math_working_rounding_and_tolerance_options():
    from synthfactory.verify.math_working import MathWorkingVerifier

    exact = MathWorkingVerifier(MathWorkingVerifier.Options(rounding=False))
    assert work(exact, "10 / 3 = 3.33 cups.").reason == "false_step: 10 / 3 = 3.33"
    loose = MathWorkingVerifier(MathWorkingVerifier.Options(rounding=False, rel_tolerance=0.01))
    assert work(loose, "10 / 3 = 3.33 cups.").passed
    with pytest.raises(ValueError):
        MathWorkingVerifier.Options(tolerance=1)


@pytest.mark.parametrize("response", [
    "__import__('os').system('touch /tmp/pwned') = 1 + 1.",
    "9**9**9**9 = 1 + 1.",
    "9 ^ 9 ^ 9 ^ 9 = 1 + 1.",
    "(" * 10_000 + "1" + ")" * 10_000 + " + 1 = 2.",
    "1 + " * 20_000 + "1 = 3.",
    "-" * 20_000 + "1 + 1 = 0.",
    "9" * 5000 + " * " + "9" * 5000 + " = 1 + 1.",
    "3 + 4 = 8 " * 10_000,
])
def test_math_working_hostile_text_is_never_evaluated_and_never_hangs(working, response):
    start = time.perf_counter()
    verdict = work(working, response)
    assert time.perf_counter() - start < 2.0
    assert verdict.passed or verdict.reason.startswith("false_step"), verdict


def test_math_working_parses_without_eval():
    """No eval, exec or compile in the modules that read equations: the parser is our own."""
    import ast
    import inspect

    from synthfactory.verify import arithmetic, math_working

    for module in (arithmetic, math_working):
        calls = {n.func.id for n in ast.walk(ast.parse(inspect.getsource(module)))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not calls & {"eval", "exec", "compile", "__import__"}, module.__name__


def test_math_working_restated_givens_and_self_comparison(working):
    from synthfactory.verify.math_working import MathWorkingVerifier

    problem = "One toy car costs 4.5 dollars. How many dollars do 4 toy cars cost?"
    verdict = work(working, "A toy car costs 4 dollars.\nThere are 4 toy cars.\n4 * 4.5 = 18.\nAnswer: 18.", problem)
    assert verdict.reason.startswith("contradicts_problem: A toy car costs 4 dollars."), verdict
    assert work(working, "A toy car costs 4.5 dollars. 4 * 4.5 = 18.\nAnswer: 18", problem).passed
    # a quantity the problem changes is said again with its new value: not a contradiction
    assert work(working, "Ben has 6 + 2 = 8 books.\nBen has 8 books.\nAnswer: 8",
                "Ben has 6 books. Gus gives Ben 2 more books. How many books does Ben have now?").passed
    # the problem comes from the seed when the claim has no prompt
    seeded = working.verify(Claim(response="A toy car costs 4 dollars.", seed={"question": problem}))
    assert seeded.reason.startswith("contradicts_problem")
    off = MathWorkingVerifier(MathWorkingVerifier.Options(restated_givens=False, self_comparison=False))
    assert work(off, "A toy car costs 4 dollars.", problem).passed
    nonsense = "Yusuf has 9 - 5 = 4 more stamps than Yusuf.\nAnswer: 4"
    assert work(working, nonsense).reason == "self_comparison: Yusuf has 9 - 5 = 4 more stamps than Yusuf"
    assert work(off, nonsense).passed
    assert work(working, "Tom has 3 more apples than Tom's sister.").passed


def test_math_working_is_registered_and_described():
    from synthfactory.registry import VERIFIERS
    from synthfactory.verify.math_answer import MathAnswerVerifier

    cls = VERIFIERS.load("math_working")
    assert "every equation in the working is true" in cls.description
    assert MathAnswerVerifier.description.startswith("the final answer only")


def test_the_card_says_what_each_verifier_checks():
    from synthfactory.model.metadata import VersionMetadata
    from synthfactory.publish.card import _verification_section

    meta = VersionMetadata.model_validate({"version": 1, "verification": {
        "answer": {"method": "math_answer", "checked": 10, "passed": 4, "rate": 0.4},
        "working": {"method": "math_working", "checked": 4, "passed": 3, "rate": 0.75}}})
    card = "\n".join(_verification_section(meta))
    assert "| working (`math_working`) pass rate | 3 of 4 (0.75) |" in card
    assert "- **answer** (`math_answer`): the final answer only" in card
    assert "- **working** (`math_working`): every equation in the working is true" in card
