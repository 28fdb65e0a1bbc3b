"""GX suites load strictly: every shipped suite builds whole, an expectation Great Expectations
cannot build is a one-line recipe error (exit 2) before any engine starts, and the preference
suite's "chosen outscores rejected" expectation gates real preference rows, and a batch that kept no
row goes through its suite as an empty table."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from synthfactory.errors import RecipeError
from synthfactory.grading.llm import JudgeScore
from synthfactory.methods import method_for
from synthfactory.model.batch import BatchState, synthetic_count, with_reason
from synthfactory.quality.validation import SuiteGate, failed_with_rows
from synthfactory.recipe import load_recipe
from synthfactory.registry import STAGES
from tests.conftest import ROOT, cli_command, make_recipe

SUITES = sorted((ROOT / "expectations").glob("*.json"))
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"


def _suite(tmp_path: Path, *extra: dict) -> Path:
    path = tmp_path / "bad_suite.json"
    path.write_text(json.dumps({"name": "bad", "expectations": [
        {"type": "expect_column_to_exist", "kwargs": {"column": "id"}}, *extra]}))
    return path


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_every_shipped_suite_loads_strictly_and_whole(path, caplog):
    with caplog.at_level(logging.ERROR, logger="great_expectations"):
        gate = SuiteGate(path)
    assert len(gate.suite.expectations) == len(json.loads(path.read_text())["expectations"])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("expectation, message", [
    ({"type": "expect_column_pair_values_A_to_be_greater_than_B", "kwargs": {"column_A": "a", "column_B": "b"}},
     "expectation 2 'expect_column_pair_values_A_to_be_greater_than_B': Great Expectations 1.24.1 has no such "
     f"expectation; did you mean '{PAIR}'?"),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"columnn": "score", "min_value": 0}},
     "expectation 2 'expect_column_values_to_be_between': column: field required; columnn: extra fields not permitted"),
    ({"kwargs": {"column": "id"}}, "expectation 2 needs a 'type'"),
])
def test_an_expectation_gx_cannot_build_is_a_one_line_recipe_error(tmp_path, expectation, message):
    path = _suite(tmp_path, expectation)
    with pytest.raises(RecipeError) as caught:
        SuiteGate(path)
    text = str(caught.value)
    assert text.startswith(f"validation.suite: {path}: {message}") and "\n" not in text


def test_the_preference_pair_expectation_gates_the_rows_the_method_makes(tmp_path):
    """`chosen outscores rejected` reads the columns the preference method writes; real rows mixed
    into the batch (no scores) are skipped, and a pair whose chosen does not score higher fails it."""
    loaded = load_recipe(make_recipe(tmp_path, generation__method="preference",
                                     generation__method_options={"candidates": 2, "temperatures": [0.3, 1.1],
                                                                 "min_margin": 0.0}))
    method = method_for(loaded.recipe)

    def pair(prompt: str, high: float, low: float) -> dict:
        row = {"id": prompt, "prompt": prompt, "candidates": [f"{prompt} one", f"{prompt} two"],
               "prompt_messages": [{"role": "user", "content": prompt}], "source": "synthetic"}
        scores = [JudgeScore(raw={"accuracy": v}, normalised={"accuracy": v}, score=v) for v in (high, low)]
        return method.settle(row, scores)

    rows = [pair("tides", 0.9, 0.2), pair("lava", 0.7, 0.5),
            {"id": "real", "text": "a real paragraph", "source": "real", "score_chosen": None, "score_rejected": None}]
    gate = SuiteGate(ROOT / "expectations" / "preference.json")

    def pair_result(rows: list[dict]) -> dict:
        outcome = gate.validate(rows)
        [result] = [r for r in outcome["result"]["results"] if r["expectation_config"]["type"] == PAIR]
        return result

    passing = pair_result(rows)
    assert passing["success"] and not passing["exception_info"]["raised_exception"]
    assert (passing["result"]["element_count"], passing["result"]["missing_count"],
            passing["result"]["unexpected_count"]) == (3, 1, 0)  # the two pairs checked, the real row skipped
    assert pair("tied", 0.4, 0.4) == "low_margin: a tie (chosen and rejected score the same)"  # never a row
    flipped = {**pair("flipped", 0.6, 0.3), "score_chosen": 0.3, "score_rejected": 0.6}
    failing = pair_result([*rows, flipped])
    assert not failing["success"] and failing["result"]["unexpected_count"] == 1
    assert f"{PAIR}()" in gate.validate([*rows, flipped])["failed_expectations"]


def _all_failed_verification(count: int = 3) -> BatchState:
    """A code batch after the measure stage whose every row failed its tests: none left in play."""
    failed = [with_reason({"id": f"r{i}", "source": "synthetic", "text": "def f(:", "prompt": "p"}, "verify",
                          "verify_failed: tests: SyntaxError") for i in range(count)]
    return BatchState("b-all-failed", 0, "measured", quarantined=failed, verified={"tests": [count, 0]})


def test_a_batch_whose_every_row_failed_verification_goes_through_the_suite_and_fails_it(tmp_path):
    """The validate stage on a batch that kept no row: the real code suite sees an empty table with
    the published columns, fails `expect_table_row_count_to_be_between` (min 1), and the batch is
    quarantined with that result and its Data Docs page; its rows stay where verify put them."""
    gate = SuiteGate(ROOT / "expectations" / "code.json", docs_dir=tmp_path / "docs")
    state = _all_failed_verification()
    settled = STAGES.load("validate")().run(SimpleNamespace(gate=gate), state)
    assert settled.status == "quarantined" and settled.rows == [] and settled.quarantined == state.quarantined
    validation = settled.validation
    assert validation["success"] is False and validation["suite"] == "code"
    assert "expect_table_row_count_to_be_between()" in validation["failed_expectations"]
    results = validation["result"]["results"]
    [count] = [r for r in results if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"]
    assert count["result"]["observed_value"] == 0
    assert not [r for r in results if r["exception_info"]["raised_exception"]]  # every column the suite names exists
    assert Path(validation["data_docs_url"].removeprefix("file://")).is_file()
    assert synthetic_count(settled) == len(settled.rows) + len(settled.rejected) + len(settled.quarantined) == 3


def test_on_failure_fail_counts_the_batches_whose_rows_failed_not_those_that_kept_none():
    """Both are quarantined batches with their results; only rows the gate moved stop a `fail` run."""
    gate = SuiteGate(ROOT / "expectations" / "code.json")
    validate = STAGES.load("validate")()
    empty = validate.run(SimpleNamespace(gate=gate), _all_failed_verification())
    kept = [{"id": "k0", "source": "synthetic", "text": "no code here", "prompt": "p"}]
    failing = validate.run(SimpleNamespace(gate=gate), BatchState("b-bad-rows", 1, "measured", rows=kept))
    assert (empty.status, failing.status) == ("quarantined", "quarantined")
    assert failed_with_rows([empty, failing]) == ["b-bad-rows"]


def test_a_batch_with_no_row_that_its_suite_accepts_is_empty_with_its_result(tmp_path):
    gate = SuiteGate(_suite(tmp_path))  # only `expect_column_to_exist(id)`: an empty table passes
    settled = STAGES.load("validate")().run(SimpleNamespace(gate=gate), _all_failed_verification(2))
    assert settled.status == "empty" and settled.validation["success"] is True
    assert len(settled.quarantined) == synthetic_count(settled) == 2


class _Recording(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that only records that an engine called it."""

    calls: list[str] = []

    def do_GET(self):
        self.calls.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        body = b'{"data": [{"id": "m"}]}'
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_unknown_expectation_stops_the_run_with_exit_2_before_any_engine_starts(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    suite = {"name": "bad", "expectations": [
        {"type": "expect_column_to_exist", "kwargs": {"column": "id"}},
        {"type": "expect_column_pair_values_A_to_be_greater_than_B",
         "kwargs": {"column_A": "score_chosen", "column_B": "score_rejected"}}]}
    recipe = make_recipe(tmp_path, suite=suite, generation__engine="openai", grading__method="logprobs",
                         generation__options={"base_urls": [f"http://127.0.0.1:{server.server_address[1]}/v1"],
                                              "max_retries": 0})
    try:
        done = subprocess.run(cli_command("run", str(recipe), "--store", str(tmp_path / "store"), "--no-prefect"),
                              capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    [line] = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert line == (f"synthfactory: error: validation.suite: {tmp_path / 'suite.json'}: expectation 2 "
                    "'expect_column_pair_values_A_to_be_greater_than_B': Great Expectations 1.24.1 has no such "
                    f"expectation; did you mean '{PAIR}'?")
    assert _Recording.calls == []  # no engine asked the endpoint for its models: none was started
