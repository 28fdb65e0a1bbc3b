"""LLM-as-judge over a rubric of named criteria; every score normalised to [0, 1].

Two methods, one interface (`requests` for a row, `parse` of the answers):
- `json`: one request per row, output constrained by a JSON schema (a grammar on llama.cpp),
  an integer grade per criterion on the recipe's scale.
- `logprobs`: one yes/no question per criterion; the score is P(yes) / (P(yes) + P(no)) from the
  first token's log-probabilities. Small models that answer every JSON rubric with the same
  grade still rank answers this way (G-Eval style probability weighting).

A judge declares the columns it fills (`columns`): `score` and `scores`, the base row's (every
row has them, null without a judge). A log-probability judge also checks position bias on the rows
of a method that compares pairs (`pair_columns`, filled by the grade stage).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.recipe import Criterion, GradingConfig
from synthfactory.registry import JUDGES

JUDGE_SYSTEM = (
    "You are a strict grader of training data. Judge the response to the instruction on each "
    "criterion and answer only with what is asked for."
)
YES, NO = "yes", "no"


@dataclass(frozen=True)
class JudgeScore:
    """One parsed judgement: raw grades as the judge gave them, their [0, 1] form, and the mean."""

    raw: dict[str, Any]  # criterion -> grade; a panel's: judge -> {"score": its score, **its grades}
    normalised: dict[str, float]
    score: float


# what every judge fills: the row's score and every grade behind it (JSON; a panel's by judge)
SCORE_COLUMNS: tuple[pa.Field, ...] = (pa.field("scores", pa.string()), pa.field("score", pa.float64()))
# the position-bias check (a log-probability judge compares a pair in both orders): mean P(the first
# slot wins), and whether the verdict followed the answers
POSITION_BIAS_COLUMNS: tuple[pa.Field, ...] = (pa.field("judge_first_slot_p", pa.float64()),
                                               pa.field("judge_order_consistent", pa.bool_()))


class JudgementError(ValueError):
    """The judge's answer could not be read as a grade for every criterion."""


def rubric_of(grading: GradingConfig) -> list[Criterion]:
    """The criteria an LLM judge grades: the grading it sees always has them (the recipe checks)."""
    assert grading.rubric is not None, "an LLM judge's grading has a rubric (checked when the recipe loads)"
    return grading.rubric


def judge_schema(grading: GradingConfig) -> dict:
    """JSON schema the engine turns into a grammar: every criterion, an integer on the scale."""
    values = list(range(grading.scale_min, grading.scale_max + 1))
    rubric = rubric_of(grading)
    return {
        "type": "object",
        "properties": {c.name: {"type": "integer", "enum": values} for c in rubric},
        "required": [c.name for c in rubric],
        "additionalProperties": False,
    }


class LLMJudge:
    """Base of the judges that ask an engine: built from the grading the panel's judge sees
    (its method, model and rubric; `GradingConfig.for_judge`)."""

    columns = SCORE_COLUMNS

    @classmethod
    def for_panel(cls, grading: GradingConfig, embedder: Callable[[], Any]) -> LLMJudge:
        return cls(grading)

    @staticmethod
    def model_of(judge: Any, recipe: Any) -> str | None:
        """The model it asks: its own, else the generator's (named in the version's metadata and card)."""
        return judge.model or recipe.generation.model

    def __init__(self, grading: GradingConfig) -> None:
        self.grading = grading


class JsonJudge(LLMJudge):
    """All criteria in one constrained JSON answer."""

    def __init__(self, grading: GradingConfig) -> None:
        self.grading = grading
        self.schema = judge_schema(grading)

    def requests(self, instruction: str, response: str, seed: int) -> list[ChatRequest]:
        g, rubric = self.grading, rubric_of(self.grading)
        criteria = "\n".join(f"- {c.name}: {c.description}" for c in rubric)
        example = ", ".join(f'"{c.name}": <{g.scale_min}-{g.scale_max}>' for c in rubric)
        user = (
            f"Instruction:\n{instruction}\n\nResponse:\n{response}\n\n"
            f"Grade the response from {g.scale_min} (worst) to {g.scale_max} (best) on:\n{criteria}\n\n"
            f"Answer with JSON: {{{example}}}"
        )
        return [ChatRequest(
            messages=({"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}),
            max_tokens=g.max_tokens, temperature=0.0 if seed == 0 else 0.7, top_p=1.0, seed=seed,
            json_schema=self.schema,
        )]

    def parse(self, results: list[ChatResult]) -> JudgeScore:
        return parse_judgement(results[0].text, self.grading)


class LogprobJudge(LLMJudge):
    """One yes/no question per criterion; the instruction and response come first so the
    engine's prefix cache serves every criterion of a row."""

    pair_columns = POSITION_BIAS_COLUMNS  # on rows of a method that compares pairs (`Method.compares_pairs`)

    def requests(self, instruction: str, response: str, seed: int) -> list[ChatRequest]:
        head = f"Instruction:\n{instruction}\n\nResponse:\n{response}\n\n"
        return [
            ChatRequest(
                messages=({"role": "system", "content": JUDGE_SYSTEM},
                          {"role": "user",
                           "content": f"{head}Is this true of the response: {c.description} Reply yes or no."}),
                max_tokens=1, temperature=0.0, top_p=1.0, seed=seed, logprobs=20,
            )
            for c in rubric_of(self.grading)
        ]

    def parse(self, results: list[ChatResult]) -> JudgeScore:
        raw = {c.name: p_yes(r) for c, r in zip(rubric_of(self.grading), results, strict=True)}
        return JudgeScore(raw=raw, normalised=dict(raw), score=sum(raw.values()) / len(raw))


def p_yes(result: ChatResult) -> float:
    """P(yes) / (P(yes) + P(no)) over the first generated token's top log-probabilities."""
    return _first_token_share(result, YES, NO, " (use grading.method: json)")


def _first_token_share(result: ChatResult, one: str, other: str, hint: str = "") -> float:
    """P(one) / (P(one) + P(other)) over the first token's top log-probabilities (case and spaces
    folded); a JudgementError when the engine failed or neither word is among them."""
    if result.error:
        raise JudgementError(result.error)
    if not result.logprobs:
        raise JudgementError(f"the engine returned no log-probabilities{hint}")
    mass = {one: 0.0, other: 0.0}
    for candidate in result.logprobs[0]["top"]:
        word = candidate["token"].strip().lower()
        if word in mass:
            mass[word] += math.exp(candidate["logprob"])
    total = mass[one] + mass[other]
    if total <= 0.0:
        raise JudgementError(f"neither {one} nor {other} among the top log-probabilities")
    return mass[one] / total


def make_judge(grading: GradingConfig) -> LLMJudge:
    """The LLM judge `grading.method` names (synthfactory.registry.JUDGES)."""
    return JUDGES.load(grading.method)(grading)


def parse_judgement(text: str, grading: GradingConfig) -> JudgeScore:
    """Read the judge's JSON; raise JudgementError naming what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JudgementError(f"not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise JudgementError("not a JSON object")
    raw: dict[str, float] = {}
    for criterion in rubric_of(grading):
        grade = value.get(criterion.name)
        if isinstance(grade, bool) or not isinstance(grade, (int, float)) or grade != int(grade):
            raise JudgementError(f"missing or non-integer grade for {criterion.name}")
        if not grading.scale_min <= grade <= grading.scale_max:
            raise JudgementError(f"{criterion.name}={grade} outside {grading.scale_min}..{grading.scale_max}")
        raw[criterion.name] = int(grade)
    span = grading.scale_max - grading.scale_min
    normalised = {k: (v - grading.scale_min) / span for k, v in raw.items()}
    return JudgeScore(raw=raw, normalised=normalised, score=sum(normalised.values()) / len(normalised))


FIRST, SECOND = "a", "b"


def pairwise_request(instruction: str, first: str, second: str) -> ChatRequest:
    """Which of two responses is better, as one token: the position-bias check asks it in both orders."""
    user = (f"Instruction:\n{instruction}\n\nResponse A:\n{first}\n\nResponse B:\n{second}\n\n"
            "Which response is better? Reply A or B.")
    return ChatRequest(messages=({"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}),
                       max_tokens=1, temperature=0.0, top_p=1.0, seed=0, logprobs=20)


def p_first(result: ChatResult) -> float:
    """P(A) / (P(A) + P(B)) over the first token's top log-probabilities."""
    return _first_token_share(result, FIRST, SECOND)
