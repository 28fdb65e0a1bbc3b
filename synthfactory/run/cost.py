"""What a run spends, from measured numbers only: tokens the engines counted, engine-seconds they
were busy, and money only where the recipe's card gives a price (otherwise null, never zero).

One place computes it; the budget (`synthfactory.run.control`), the commit metadata, the summary
JSON, `synthfactory versions`, the Prefect report and the dataset card all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from synthfactory.run.batch import BatchState


@dataclass(frozen=True)
class Prices:
    """The card's prices: per engine-hour (GPU or CPU hour, as the recipe says) and per million
    tokens (prompt + completion). Both None: the run is not priced."""

    per_engine_hour: float | None = None
    per_million_tokens: float | None = None
    currency: str = "USD"

    @classmethod
    def from_card(cls, card: Any) -> "Prices":
        """From the recipe's `card` section (a CardConfig or its dict in commit metadata)."""
        get = card.get if isinstance(card, dict) else (lambda key, default=None: getattr(card, key, default))
        return cls(get("price_per_gpu_hour"), get("price_per_million_tokens"), get("currency", "USD") or "USD")

    @property
    def priced(self) -> bool:
        return self.per_engine_hour is not None or self.per_million_tokens is not None

    def money(self, tokens: float, engine_seconds: float) -> float | None:
        if not self.priced:
            return None
        total = (self.per_engine_hour or 0.0) * engine_seconds / 3600.0
        total += (self.per_million_tokens or 0.0) * tokens / 1e6
        return round(total, 6)


@dataclass(frozen=True)
class Spend:
    tokens: int = 0
    engine_seconds: float = 0.0

    def __add__(self, other: "Spend") -> "Spend":
        return Spend(self.tokens + other.tokens, self.engine_seconds + other.engine_seconds)


def token_counts(rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Prompt and completion tokens the generator and the judges spent on these rows (real rows: 0)."""
    prompt = completion = 0
    for r in rows:
        prompt += int((r.get("prompt_tokens") or 0) + (r.get("judge_prompt_tokens") or 0))
        completion += int((r.get("completion_tokens") or 0) + (r.get("judge_completion_tokens") or 0))
    return prompt, completion


def every_row(states: Iterable[BatchState]) -> list[dict[str, Any]]:
    """Every row of these batches, whichever list it ended in."""
    return [r for s in states for r in (*s.rows, *s.rejected, *s.quarantined)]


def batch_spend(state: BatchState) -> Spend:
    """What one finished batch cost: its rows' tokens, and the engine-seconds of all its requests."""
    return Spend(sum(token_counts(every_row([state]))), state.engine_seconds)


def _per(spend_tokens: float, seconds: float, rows: int, prices: Prices) -> dict[str, Any]:
    if not rows:
        return {"tokens": None, "engine_seconds": None, "money": None}
    return {"tokens": round(spend_tokens / rows, 3), "engine_seconds": round(seconds / rows, 6),
            "money": prices.money(spend_tokens / rows, seconds / rows)}


def run_cost(states: Iterable[BatchState], prices: Prices, accepted: int) -> dict[str, Any]:
    """The run's cost block: totals, money (null without prices), and per row.

    `per_accepted_row` is the whole spend divided by the rows published: what one kept row cost,
    the rows that did not make it included. `per_rejected_row` is the mean measured spend on one
    row that was not published (rejected or quarantined), from the rows' own counts.
    """
    states = list(states)
    prompt, completion = token_counts(every_row(states))
    seconds = sum(s.engine_seconds for s in states)
    dropped = [r for s in states for r in (*s.rejected, *s.quarantined) if r.get("source") != "real"]
    dropped_seconds = sum((r.get("latency_s") or 0.0) + (r.get("judge_latency_s") or 0.0) for r in dropped)
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "tokens": prompt + completion,
        "engine_seconds": round(seconds, 3), "money": prices.money(prompt + completion, seconds),
        "currency": prices.currency if prices.priced else None,
        "per_accepted_row": _per(prompt + completion, seconds, accepted, prices),
        "per_rejected_row": _per(sum(token_counts(dropped)), dropped_seconds, len(dropped), prices),
    }
