"""Judges that are not LLMs: signals a panel can weigh next to (or instead of) a model's verdict.

- `relevance`: does the response talk about what the instruction asks? Cosine similarity of the
  two texts' all-MiniLM-L6-v2 embeddings (the model the diversity metrics already load), clipped
  to [0, 1]. Catches off-topic answers and answers to a different question.
- `form`: the screens' signals as scores: the response ends a sentence (`complete`), does not
  loop (`no_repetition`: 1 - repeated word 3-grams / 0.5) and is not a refusal (`no_refusal`).
  Catches truncation, repetition and refusals.

Neither reads facts: a changed number or name passes both (the LLM judge is the only one that could).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from synthfactory.grading.llm import SCORE_COLUMNS, JudgeScore
from synthfactory.model.lineage import stable_hash
from synthfactory.quality import text as tq

_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]\u201d\u2019]*\s*$")


class RelevanceJudge:
    criteria = ("relevance",)
    columns = SCORE_COLUMNS

    @classmethod
    def for_panel(cls, grading: Any, embedder: Callable[[], Any]) -> RelevanceJudge:
        return cls(embedder)

    @staticmethod
    def model_of(judge: Any, recipe: Any) -> str | None:
        """The embedding model it reads (named in the version's metadata and card)."""
        from synthfactory.quality.embed import MODEL_NAME

        return MODEL_NAME

    def __init__(self, embedder: Callable[[], Any]) -> None:
        self._embedder = embedder

    def grade(self, pairs: list[tuple[str, str]]) -> list[JudgeScore]:
        if not pairs:
            return []
        embedder = self._embedder()
        texts = [t for pair in pairs for t in pair]
        vectors = embedder.encode([stable_hash("relevance", t) for t in texts], texts)
        scores = []
        for k in range(len(pairs)):
            cosine = float(vectors[2 * k] @ vectors[2 * k + 1])
            value = round(min(1.0, max(0.0, cosine)), 6)
            scores.append(JudgeScore(raw={"relevance": value}, normalised={"relevance": value}, score=value))
        return scores


class FormJudge:
    criteria = ("complete", "no_repetition", "no_refusal")
    columns = SCORE_COLUMNS

    @classmethod
    def for_panel(cls, grading: Any, embedder: Callable[[], Any]) -> FormJudge:
        return cls()

    @staticmethod
    def model_of(judge: Any, recipe: Any) -> str | None:
        return None  # text signals, no model

    def grade(self, pairs: list[tuple[str, str]]) -> list[JudgeScore]:
        return [self.one(response) for _, response in pairs]

    @staticmethod
    def one(response: str) -> JudgeScore:
        values = {
            "complete": 1.0 if _ENDS_SENTENCE.search(response) else 0.0,
            "no_repetition": round(max(0.0, 1.0 - tq.repeated_ngram_ratio(tq.words(response)) / 0.5), 6),
            "no_refusal": 0.0 if tq.is_refusal(response) else 1.0,
        }
        return JudgeScore(raw=values, normalised=dict(values), score=round(sum(values.values()) / len(values), 6))
