"""What a run spends, from measured numbers only: tokens the engines counted, engine-seconds they
were busy, and money only where the recipe's card gives a price (otherwise null, never zero).

One place computes it (`run_cost`) and one formats it (`Cost`, `money_text`); the budget
(`synthfactory.run.control`), the commit metadata, the summary JSON, `synthfactory versions`, the
Prefect report and the dataset card all read it from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from synthfactory.model.batch import BatchState

NO_PRICE = "n/a (no price in the recipe's card)"


@dataclass(frozen=True)
class Prices:
    """The card's prices: per engine-hour (GPU or CPU hour, as the recipe says) and per million
    tokens (prompt + completion). Both None: the run is not priced."""

    per_engine_hour: float | None = None
    per_million_tokens: float | None = None
    currency: str = "USD"

    @classmethod
    def from_card(cls, card: Any) -> Prices:
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

    def __add__(self, other: Spend) -> Spend:
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


def _per(spend_tokens: float, seconds: float, rows: int, prices: Prices) -> PerRow:
    if not rows:
        return PerRow(tokens=None, engine_seconds=None, money=None)
    return PerRow(tokens=round(spend_tokens / rows, 3), engine_seconds=round(seconds / rows, 6),
                  money=prices.money(spend_tokens / rows, seconds / rows))


def run_cost(states: Iterable[BatchState], prices: Prices, accepted: int) -> Cost:
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
    return Cost(
        prompt_tokens=prompt, completion_tokens=completion, tokens=prompt + completion,
        engine_seconds=round(seconds, 3), money=prices.money(prompt + completion, seconds),
        currency=prices.currency if prices.priced else None,
        per_accepted_row=_per(prompt + completion, seconds, accepted, prices),
        per_rejected_row=_per(sum(token_counts(dropped)), dropped_seconds, len(dropped), prices),
    )


def money_text(value: float | None, currency: str | None, digits: int = 4, missing: str = NO_PRICE) -> str:
    """Money as every report, card and CLI line prints it: `0.0123 USD`, or `missing` unpriced."""
    return missing if value is None else f"{value:.{digits}f} {currency or ''}".rstrip()


def _fixed(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


class PerRow(BaseModel):
    """Spend per row: tokens, engine-seconds and money (money null without prices; all null without rows)."""

    model_config = ConfigDict(extra="allow")

    tokens: float | None = None
    engine_seconds: float | None = None
    money: float | None = None


class Cost(BaseModel):
    """The run's cost block as the commit records it (`run_cost`), and the one way it is printed.

    Versions published before runs recorded money or the per-row split parse with those unset:
    `tokens` is then prompt + completion, and `VersionMetadata` prices `money` from the card."""

    model_config = ConfigDict(extra="allow")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int | None = None
    engine_seconds: float = 0.0
    money: float | None = None
    currency: str | None = None
    per_accepted_row: PerRow | None = None
    per_rejected_row: PerRow | None = None

    @model_validator(mode="after")
    def _total_tokens(self) -> Cost:
        if self.tokens is None:
            self.tokens = self.prompt_tokens + self.completion_tokens
        return self

    def money_text(self, value: float | None, digits: int = 4, missing: str = NO_PRICE) -> str:
        """`value` (the run's money or a per-row figure) in this cost's currency."""
        return money_text(value, self.currency, digits, missing)

    def line(self) -> str:
        """One line for the CLI: the run's tokens, engine-seconds and money, then per accepted row."""
        per = self.per_accepted_row or PerRow()
        money = f", {self.money_text(self.money)}" if self.money is not None else ", no prices in the recipe's card"
        return (f"{self.tokens:,} tokens, {_short(self.engine_seconds)} engine-seconds{money}; per accepted row "
                f"{_short(per.tokens)} tokens, {_short(per.engine_seconds)} engine-seconds"
                + (f", {self.money_text(per.money, 6)}" if per.money is not None else ""))

    def table(self) -> list[str]:
        """Markdown: tokens, engine-seconds and money for the run, per accepted and per rejected row
        (money only where the recipe's card gives a price). The report and the card print this."""
        accepted, rejected = self.per_accepted_row or PerRow(), self.per_rejected_row or PerRow()
        return [
            "| | tokens | engine-seconds | money |",
            "| --- | --- | --- | --- |",
            f"| run | {self.tokens:,} ({self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion) | "
            f"{_fixed(self.engine_seconds, 1)} | {self.money_text(self.money, 6)} |",
            f"| per accepted row (the run's spend over the rows it published) | {_fixed(accepted.tokens, 1)} | "
            f"{_fixed(accepted.engine_seconds, 3)} | {self.money_text(accepted.money, 6)} |",
            f"| per rejected row (mean spend on a row not published) | {_fixed(rejected.tokens, 1)} | "
            f"{_fixed(rejected.engine_seconds, 3)} | {self.money_text(rejected.money, 6)} |",
        ]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("n/a" if value is None else str(value))
