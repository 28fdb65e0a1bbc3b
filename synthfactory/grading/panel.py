"""A panel of judges: every judge grades every item, the row score aggregates them.

A recipe without `grading.judges` has a panel of one LLM judge and rows keep their flat `scores`
({criterion: grade}). With `judges`, `scores` holds every judge's score and grades by name
({judge: {"score": s, criterion: grade}}) and the row score is the `mean` (weighted), the `min`, or under
`majority` the share of judges whose own score reaches the threshold. A judge of weight 0 is an
observer: graded and measured like the others, without a vote in any aggregate.

Inter-judge agreement is Krippendorff's alpha (interval metric) over the judges' scores of a
batch's items: 1 is perfect agreement, 0 is what chance gives, below 0 systematic disagreement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.grading.llm import JudgementError, JudgeScore
from synthfactory.recipe import LLM_JUDGES, GradingConfig, JudgeConfig
from synthfactory.registry import JUDGES

Chat = Callable[[list[ChatRequest]], list[ChatResult]]


@dataclass
class PanelResult:
    """What a panel made of `n` items: per item the aggregate verdict or why it has none, the
    judge cost it took, and every judge's own score (for agreement and bias checks)."""

    verdicts: list[JudgeScore | None]
    errors: list[str | None]
    prompt_tokens: list[int]
    completion_tokens: list[int]
    latency_s: list[float]
    by_judge: dict[str, list[float | None]] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0


def _default_embedder() -> Any:
    from synthfactory.quality.embed import shared_embedder

    return shared_embedder()


class Panel:
    def __init__(self, grading: GradingConfig, embedder: Callable[[], Any] | None = None,
                 dataset_uri: Any = None) -> None:
        """`dataset_uri`: where a learned judge stores the model it trains (beside the calibration): a
        dataset's root Location (its credentials with it) or a URI (the standard variables)."""
        self.grading = grading
        self.configs: list[JudgeConfig] = grading.panel
        self.single = grading.judges is None
        embedder = embedder or _default_embedder
        self.judges: list[Any] = [  # each from the registry, seeing grading as its own (method, model, rubric)
            JUDGES.load(config.method).for_learning(config, grading, embedder, dataset_uri)
            if JUDGES.fact(config.method, "learned", False) else
            JUDGES.load(config.method).for_panel(grading.for_judge(config), embedder)
            for config in self.configs]
        learned = [JUDGES.fact(c.method, "learned", False) for c in self.configs]
        self._others = [k for k, is_learned in enumerate(learned) if not is_learned]
        self._order = self._others + [k for k, is_learned in enumerate(learned) if is_learned]  # learned run last

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.configs]

    def grade(self, pairs: list[tuple[str, str]], chats: list[Chat | None],
              seed_for: Callable[[int, int], int]) -> PanelResult:
        """Grade every (instruction, response) pair with every judge. `chats[k]` sends judge k's
        requests to its engine (None for judges that are not LLMs); `seed_for(item, attempt)` is
        the sampling seed of a retry. An LLM answer that cannot be read is asked again up to
        `max_attempts`; an item some judge could not grade gets no verdict, only its error."""
        n = len(pairs)
        result = PanelResult(verdicts=[None] * n, errors=[None] * n, prompt_tokens=[0] * n,
                             completion_tokens=[0] * n, latency_s=[0.0] * n)
        own: dict[int, list[JudgeScore | None]] = {}
        for k in self._order:
            config, judge, chat = self.configs[k], self.judges[k], chats[k]
            if config.method in LLM_JUDGES:
                own[k] = self._ask(judge, pairs, chat, seed_for, result)
            elif JUDGES.fact(config.method, "learned", False):  # after the others: their scores are features
                judge.ensure_model(lambda items: self.grade_others(items, chats))
                own[k] = judge.grade_with(pairs, {self.configs[j].name: own[j] for j in self._others})
            else:
                own[k] = list(judge.grade(pairs))
        per_judge: list[list[JudgeScore | None]] = []
        for k, config in enumerate(self.configs):
            scores = own[k]
            per_judge.append(scores)
            result.by_judge[config.name] = [s.score if s is not None else None for s in scores]
            for i, score in enumerate(scores):
                if score is None and result.errors[i] is None:
                    result.errors[i] = "unreadable"
                if score is None and not self.single:
                    result.errors[i] = f"{config.name}: {result.errors[i]}"
        for i in range(n):
            if result.errors[i] is None:  # every judge scored row i
                result.verdicts[i] = self.combine(cast(list[JudgeScore], [scores[i] for scores in per_judge]))
        return result

    def grade_others(self, pairs: list[tuple[str, str]], chats: list[Chat | None]
                      ) -> dict[str, list[JudgeScore | None]]:
        """Every judge but the learned ones on `pairs` (a learned judge's labelled rows, to train on),
        with fixed retry seeds; their engine cost is not a batch's."""
        from synthfactory.model.lineage import sampling_seed

        scratch = PanelResult(verdicts=[None] * len(pairs), errors=[None] * len(pairs), prompt_tokens=[0] * len(pairs),
                              completion_tokens=[0] * len(pairs), latency_s=[0.0] * len(pairs))
        out: dict[str, list[JudgeScore | None]] = {}
        for k in self._others:
            config, judge = self.configs[k], self.judges[k]
            out[config.name] = (self._ask(judge, pairs, chats[k], lambda i, a: sampling_seed(0, 0, 0, i, a), scratch)
                                if config.method in LLM_JUDGES else list(judge.grade(pairs)))
        return out

    def _ask(self, judge: Any, pairs: list[tuple[str, str]], chat: Chat | None,
             seed_for: Callable[[int, int], int], result: PanelResult) -> list[JudgeScore | None]:
        assert chat is not None, "an LLM judge needs an engine"
        scores: list[JudgeScore | None] = [None] * len(pairs)
        errors: dict[int, str] = {}
        pending = list(range(len(pairs)))
        for attempt in range(self.grading.max_attempts):
            if not pending:
                break
            asked = [judge.requests(*pairs[i], 0 if attempt == 0 else seed_for(i, attempt)) for i in pending]
            answers = chat([r for requests in asked for r in requests])
            result.requests += len(answers)
            result.seconds += sum(a.latency_s for a in answers)
            still, offset = [], 0
            for i, requests in zip(pending, asked, strict=True):
                mine, offset = answers[offset:offset + len(requests)], offset + len(requests)
                result.prompt_tokens[i] += sum(a.prompt_tokens for a in mine)
                result.completion_tokens[i] += sum(a.completion_tokens for a in mine)
                result.latency_s[i] += sum(a.latency_s for a in mine)
                try:
                    failed = [a.error for a in mine if a.error]
                    if failed:
                        raise JudgementError(failed[0])
                    scores[i] = judge.parse(mine)
                except JudgementError as exc:
                    errors[i] = str(exc)
                    still.append(i)
            pending = still
        for i in pending:
            result.errors[i] = errors[i]
        return scores

    def combine(self, scores: list[JudgeScore]) -> JudgeScore:
        """One verdict from every judge's: a single judge's unchanged; a panel's nested by judge."""
        if self.single:
            return scores[0]
        # observers (weight 0) do not vote
        voters = [(c.weight, s.score) for c, s in zip(self.configs, scores, strict=True) if c.weight > 0]
        values = [v for _, v in voters]
        if self.grading.aggregate == "min":
            total = min(values)
        elif self.grading.aggregate == "majority":
            total = sum(v >= self.grading.threshold for v in values) / len(values)
        else:
            total = sum(w * v for w, v in voters) / sum(w for w, _ in voters)
        raw = {c.name: {"score": s.score, **s.raw} for c, s in zip(self.configs, scores, strict=True)}
        normalised = {f"{c.name}.{k}": v
                      for c, s in zip(self.configs, scores, strict=True) for k, v in s.normalised.items()}
        return JudgeScore(raw=raw, normalised=normalised, score=round(float(total), 6))


def describe_judges(recipe: Any) -> list[dict[str, Any]]:
    """Each judge of a recipe as a version's metadata and card name it: name, method, model."""
    return [{"name": j.name, "method": j.method, "weight": j.weight,
             "model": JUDGES.load(j.method).model_of(j, recipe)} for j in recipe.grading.panel]


def krippendorff_alpha(ratings: list[list[float | None]]) -> float | None:
    """Krippendorff's alpha, interval metric. `ratings[j][i]`: judge j's score of item i (None:
    missing). Items with fewer than two scores are left out; None when nothing can be compared
    or every score is the same (no variance: agreement is undefined, not perfect)."""
    units = []
    for values in zip(*ratings, strict=True):
        present = [float(v) for v in values if v is not None]
        if len(present) >= 2:
            units.append(np.array(present))
    if not units:
        return None
    pooled = np.concatenate(units)
    total = len(pooled)
    if total < 2:
        return None
    observed = sum(((u[:, None] - u[None, :]) ** 2).sum() / (len(u) - 1) for u in units) / total
    expected = ((pooled[:, None] - pooled[None, :]) ** 2).sum() / (total * (total - 1))
    if expected == 0.0:
        return None
    return float(1.0 - observed / expected)
