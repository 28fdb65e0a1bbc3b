"""`preference`: k candidate answers per prompt, each graded; the best and the worst become a
DPO pair when their score margin reaches `min_margin`.

Rows hold `chosen` and `rejected` as whole conversations (prompt messages + the answer: TRL's
DPOTrainer reads them as is and takes the shared prefix as the prompt), `score_chosen`,
`score_rejected`, `margin`, and every `candidate` with its score in `scores`. `synthfactory export
--format dpo` writes the explicit layout (`prompt`/`chosen`/`rejected` as messages).

Pairs from a verifier (math, code): a recipe with `verification` and no `grading` has its
verifiers as the judge. Every candidate is verified; chosen is the first candidate verified
right, rejected the first verified wrong (`score_chosen` 1.0, `score_rejected` 0.0, `margin` 1.0,
`score` null: no judge ran). A prompt with no right or no wrong candidate is quarantined as
`verify_failed: <name>: no_verified_pair: <k> of <n> candidates right`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pydantic import Field, model_validator

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import MESSAGES, Draft, Fail, Method, MethodOptions, Next, Row
from synthfactory.verify.base import Claim, Verdict


class PreferenceOptions(MethodOptions):
    candidates: int = Field(2, ge=2, le=16, description="answers generated per prompt")
    temperatures: list[float] | None = Field(
        None, description="one sampling temperature per candidate (default: generation.sampling.temperature)")
    min_margin: float = Field(0.1, ge=0.0, le=1.0, description="chosen score - rejected score a pair needs")

    @model_validator(mode="after")
    def _one_temperature_each(self) -> PreferenceOptions:
        if self.temperatures is not None:
            if len(self.temperatures) != self.candidates:
                raise ValueError(f"temperatures: give one per candidate ({self.candidates}), "
                                 f"got {len(self.temperatures)}")
            if any(not 0.0 <= t <= 2.0 for t in self.temperatures):
                raise ValueError("temperatures: each must be between 0 and 2")
        return self


class PreferenceMethod(Method):
    name = "preference"
    Options = PreferenceOptions
    description = "k graded candidates per prompt; best vs worst as a DPO pair when the margin allows"
    options: PreferenceOptions
    internal = (*Method.internal, "prompt_messages")  # what `settle` builds chosen and rejected from
    compares_pairs = True  # a log-probability judge compares each pair in both orders (its `pair_columns`)

    @property
    def columns(self) -> list[pa.Field]:
        return [pa.field("chosen", MESSAGES), pa.field("rejected", MESSAGES),
                pa.field("score_chosen", pa.float64()), pa.field("score_rejected", pa.float64()),
                pa.field("margin", pa.float64()), pa.field("candidates", pa.list_(pa.string()))]

    def requests(self, draft: Draft) -> list[ChatRequest]:
        temps: Sequence[float | None] = self.options.temperatures or [None] * self.options.candidates
        return [self.request(draft, draft.item.messages, part=k, temperature=t) for k, t in enumerate(temps)]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        candidates = [r.text.strip() for r in results]
        usable = [c for c in candidates if c]
        if len(usable) < 2:
            return Fail(f"empty_generation: {len(usable)} of {len(candidates)} candidates",
                        fields={"candidates": candidates, "text": "\n\n".join(usable)})
        return Row({"candidates": usable, "prompt_messages": list(draft.item.messages),
                    "text": "\n\n".join(usable)})

    def judge_items(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        return [(row["prompt"], candidate) for candidate in row["candidates"]]

    def settle(self, row: dict[str, Any], scores: list[Any]) -> dict[str, Any] | str:
        values = [s.score for s in scores]
        best = max(range(len(values)), key=lambda k: (values[k], -k))
        worst = min(range(len(values)), key=lambda k: (values[k], -k))
        margin = values[best] - values[worst]
        if best == worst or margin < self.options.min_margin:
            return f"low_margin: {margin:.3f} < {self.options.min_margin:.3f}"
        if margin <= 0:  # a tie is no preference; the suite's chosen > rejected would fail the batch
            return "low_margin: a tie (chosen and rejected score the same)"
        prompt = [dict(m) for m in row["prompt_messages"]]
        chosen, rejected = row["candidates"][best], row["candidates"][worst]
        return {
            **row, "score": values[best], "score_chosen": values[best], "score_rejected": values[worst],
            "margin": round(margin, 6), "text": chosen, "text_chars": len(chosen),
            "chosen": [*prompt, {"role": "assistant", "content": chosen}],
            "rejected": [*prompt, {"role": "assistant", "content": rejected}],
            "scores": json.dumps({"chosen": scores[best].raw, "rejected": scores[worst].raw,
                                  "candidates": [round(v, 6) for v in values]}, sort_keys=True),
        }

    def verify_claims(self, row: dict[str, Any]) -> list[Claim]:
        """Every candidate, each checked against the prompt's seed."""
        seed = json.loads(row["seed"]) if row.get("seed") else {}
        return [Claim(response=c, seed=seed, prompt=row["prompt"]) for c in row["candidates"]]

    def settle_verified(self, row: dict[str, Any], checks: list[dict[str, Verdict]]) -> dict[str, Any] | str:
        """A verified pair: the first candidate every verifier passed against the first one a
        verifier failed; without both, the reason (named by the first verifier that failed one)."""
        right = [k for k, verdicts in enumerate(checks) if all(v.passed for v in verdicts.values())]
        wrong = [k for k in range(len(checks)) if k not in right]
        if not right or not wrong:
            failing = [n for verdicts in checks for n, v in verdicts.items() if not v.passed]
            name = failing[0] if failing else next(iter(checks[0]), "verification")
            return f"{name}: no_verified_pair: {len(right)} of {len(checks)} candidates right"
        prompt = [dict(m) for m in row["prompt_messages"]]
        chosen, rejected = row["candidates"][right[0]], row["candidates"][wrong[0]]
        return {
            **row, "score": None, "score_chosen": 1.0, "score_rejected": 0.0, "margin": 1.0,
            "text": chosen, "text_chars": len(chosen),
            "chosen": [*prompt, {"role": "assistant", "content": chosen}],
            "rejected": [*prompt, {"role": "assistant", "content": rejected}],
        }

    def pairs(self, row: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(row["prompt"], row["chosen"][-1]["content"], row["rejected"][-1]["content"])]

    def content(self, row: dict[str, Any]) -> str:
        if row.get("chosen"):
            return f"{row['prompt']}\n\n{row['chosen'][-1]['content']}\n\n{row['rejected'][-1]['content']}"
        return f"{row['prompt']}\n\n{row['text']}"

    @classmethod
    def example(cls, row: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": row.get("prompt"), "chosen": (row.get("chosen") or [{}])[-1].get("content"),
                "rejected": (row.get("rejected") or [{}])[-1].get("content"),
                "score_chosen": row.get("score_chosen"), "score_rejected": row.get("score_rejected")}
