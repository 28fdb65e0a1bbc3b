"""Screens: cheap checks of a generated row before the judge, so no engine time goes to rows that
cannot be published. Each is registered in `synthfactory.registry.SCREENS` (they run in that
order) and declares its own thresholds, which a recipe sets under `quality.filters`.

A screen may add quality columns to every row (`measure`, so the GX suite can gate on them), which
it declares as Arrow fields (`columns`: the published table has them, and a key `measure` returns
that is not declared fails the run), and names why a row fails (`reason`), or None; a row that
fails is rejected with that reason, never dropped silently.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from synthfactory.quality import text as tq

ECHO_SPAN = 8  # words: an output repeating this many consecutive prompt words echoes its instruction


class ScreenOptions(BaseModel):
    """A screen's keys of `quality.filters`: strict, so a typo is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Screen:
    """Base of every screen. `method` is the run's generation method (what its rows' instruction is)."""

    Options: ClassVar[type[ScreenOptions]] = ScreenOptions
    columns: ClassVar[tuple[pa.Field, ...]] = ()  # what `measure` adds to every row

    def __init__(self, options: ScreenOptions, method: Any) -> None:
        self.options = options
        self.method = method

    def measure(self, row: dict[str, Any], words: list[str], enabled: bool) -> dict[str, Any]:
        """Quality columns this screen adds to every row (`enabled`: the guards are on)."""
        return {}

    def reason(self, row: dict[str, Any], words: list[str]) -> str | None:
        """Why the row fails this screen, or None (called only while the guards are on)."""
        return None


class LengthOptions(ScreenOptions):
    min_chars: int = Field(20, ge=0)
    max_chars: int = Field(20000, ge=1)


class LengthScreen(Screen):
    Options = LengthOptions
    options: LengthOptions

    def reason(self, row: dict[str, Any], words: list[str]) -> str | None:
        chars = len(row["text"])
        if chars < self.options.min_chars:
            return f"too_short: {chars} < {self.options.min_chars} chars"
        if chars > self.options.max_chars:
            return f"too_long: {chars} > {self.options.max_chars} chars"
        return None


class RepetitionOptions(ScreenOptions):
    max_repeated_ngram_ratio: float = Field(0.35, ge=0.0, le=1.0, description="share of repeated word 3-grams")
    max_duplicate_line_ratio: float = Field(0.5, ge=0.0, le=1.0)


class RepetitionScreen(Screen):
    Options = RepetitionOptions
    options: RepetitionOptions
    columns = (pa.field("repeated_ngram_ratio", pa.float64()), pa.field("duplicate_line_ratio", pa.float64()))

    def measure(self, row: dict[str, Any], words: list[str], enabled: bool) -> dict[str, Any]:
        return {"repeated_ngram_ratio": round(tq.repeated_ngram_ratio(words), 4),
                "duplicate_line_ratio": round(tq.duplicate_line_ratio(row["text"]), 4)}

    def reason(self, row: dict[str, Any], words: list[str]) -> str | None:
        if row["repeated_ngram_ratio"] > self.options.max_repeated_ngram_ratio:
            return f"repetitive: repeated 3-gram ratio {row['repeated_ngram_ratio']:.2f}"
        if row["duplicate_line_ratio"] > self.options.max_duplicate_line_ratio:
            return f"repetitive: duplicate line ratio {row['duplicate_line_ratio']:.2f}"
        return None


class RefusalOptions(ScreenOptions):
    refusals: bool = Field(True, description="reject rows that refuse the task")


class RefusalScreen(Screen):
    Options = RefusalOptions
    options: RefusalOptions

    def reason(self, row: dict[str, Any], words: list[str]) -> str | None:
        return "refusal" if self.options.refusals and tq.is_refusal(row["text"]) else None


class LanguageOptions(ScreenOptions):
    language: str | None = Field("en", description="ISO 639-1 code the text must be in; null: any")


class LanguageScreen(Screen):
    Options = LanguageOptions
    options: LanguageOptions
    columns = (pa.field("language", pa.string()),)  # ISO 639-1 code (null: the guards are off)

    def measure(self, row: dict[str, Any], words: list[str], enabled: bool) -> dict[str, Any]:
        return {"language": tq.language(row["text"]) if enabled and self.options.language else None}

    def reason(self, row: dict[str, Any], words: list[str]) -> str | None:
        if self.options.language and row["language"] != self.options.language:
            return f"wrong_language: {row['language']} != {self.options.language}"
        return None


class InstructionEchoOptions(ScreenOptions):
    instruction_echo: bool = Field(True, description="reject rows that repeat the prompt or leak the canary")


class InstructionEchoScreen(Screen):
    Options = InstructionEchoOptions
    options: InstructionEchoOptions

    def reason(self, row: dict[str, Any], words: list[str]) -> str | None:
        if self.options.instruction_echo and echoes(tq.words(self.method.instruction(row)), words):
            return "instruction_echo"
        return None


def echoes(prompt_words: list[str], output_words: list[str]) -> bool:
    """The output repeats ECHO_SPAN consecutive words of the prompt."""
    if len(prompt_words) < ECHO_SPAN:
        return False
    spans = {tuple(prompt_words[i:i + ECHO_SPAN]) for i in range(len(prompt_words) - ECHO_SPAN + 1)}
    return any(tuple(output_words[i:i + ECHO_SPAN]) in spans for i in range(len(output_words) - ECHO_SPAN + 1))
