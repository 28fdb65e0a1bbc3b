"""Judge answers are read strictly; unreadable ones raise a reason instead of a made-up score."""

from __future__ import annotations

import math

import pytest

from synthfactory.engines.base import ChatResult
from synthfactory.grading import JudgementError, LogprobJudge, parse_judgement
from synthfactory.recipe import GradingConfig

GRADING = GradingConfig(rubric=[{"name": "accuracy", "description": "Correct."},
                                {"name": "clarity", "description": "Clear."}])


def test_json_grades_are_normalised_to_unit_interval():
    verdict = parse_judgement('{"accuracy": 5, "clarity": 2}', GRADING)
    assert verdict.normalised == {"accuracy": 1.0, "clarity": 0.25}
    assert verdict.score == pytest.approx(0.625)


@pytest.mark.parametrize("text, reason", [
    ("not json", "not JSON"), ("[3]", "not a JSON object"), ('{"accuracy": 3}', "clarity"),
    ('{"accuracy": 9, "clarity": 3}', "outside 1..5"), ('{"accuracy": 2.5, "clarity": 3}', "non-integer"),
    ('{"accuracy": true, "clarity": 3}', "non-integer"),
])
def test_unreadable_json_judgements_raise_with_reason(text, reason):
    with pytest.raises(JudgementError, match=reason):
        parse_judgement(text, GRADING)


def _answer(yes: float, no: float, other: float = 0.5) -> ChatResult:
    top = [{"token": " Yes", "logprob": math.log(yes)}, {"token": "no", "logprob": math.log(no)},
           {"token": "The", "logprob": math.log(other)}]
    return ChatResult("Yes", "length", 10, 1, 0.01,
                      logprobs=[{"token": "Yes", "logprob": top[0]["logprob"], "top": top}])


def test_logprob_judge_scores_p_yes_per_criterion():
    judge = LogprobJudge(GRADING)
    assert len(judge.requests("Explain tides.", "The moon pulls the sea.", seed=0)) == 2
    verdict = judge.parse([_answer(0.3, 0.1), _answer(0.1, 0.3)])
    assert verdict.raw == pytest.approx({"accuracy": 0.75, "clarity": 0.25})
    assert verdict.score == pytest.approx(0.5)
    with pytest.raises(JudgementError, match="neither yes nor no"):
        judge.parse([ChatResult("x", "length", 1, 1, 0.0, logprobs=[{"token": "x", "logprob": 0.0, "top": []}])] * 2)
