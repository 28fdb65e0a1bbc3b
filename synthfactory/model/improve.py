"""The self-learning loop's records, stored beside the dataset under `{dataset}/_models/`:

- `split.json` (`SeedSplit`): which seeds train and which are held out, fixed before round 1;
- `round{k}/run.json` (`RoundRun`): the version round k published;
- `round{k}/model.json` (`ModelRecord`): round k's model (round 0: the base model), what trained it,
  its evaluations, whether it was promoted and why, its wall time; with `README.md` (its card),
  `adapter/` (LoRA) or `weights/` (all weights) and `model.gguf` (what the llama.cpp engine serves);
- `loop.json` (`LoopState`): where the loop stopped and why.

Each record is written last in its step, so a record that exists is a step finished: a resumed
loop never redoes it. Per-item results are kept so a later round's paired test needs no re-run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MODELS_DIR = "_models"
IMPROVE_SCHEMA = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SeedSplit(BaseModel):
    """The recipe's usable seeds split once, by a stable hash of each seed id, into training seeds and
    a held-out split no round ever generates from."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = IMPROVE_SCHEMA
    recipe: str
    seeds_file: str
    method: str = "stable_hash(seed_id, 'improve held-out') order; the first `held_out` seeds are held out"
    held_out: list[str] = Field(default_factory=list)  # seed ids, in the order evaluations list them
    train: list[str] = Field(default_factory=list)
    created: str = Field(default_factory=_now)


class HeldOutEval(BaseModel):
    """A model on the held-out split: k sampled answers per item, each checked by every verifier of
    the recipe. pass@1 is the mean over items of the share of an item's k answers that are right
    (the unbiased estimate from k samples), with a 95% bootstrap interval over items."""

    model_config = ConfigDict(extra="allow")

    items: int
    samples: int  # k per item
    temperature: float
    max_new_tokens: int
    pass_at_1: float
    interval: list[float] | None = None
    per_item: list[float] = Field(default_factory=list)  # share right per item, in split order
    reasons: dict[str, int] = Field(default_factory=dict)  # verdict families over every answer ("ok" = right)
    breakdown: dict[str, float | None] = Field(default_factory=dict)  # what the accuracy is made of
    examples: list[dict[str, str]] = Field(default_factory=list)  # a few answers as given: prompt, answer, reason
    seconds: float = 0.0


class PairedTest(BaseModel):
    """Candidate minus current on the same held-out items: the mean per-item difference, its 95%
    bootstrap interval and a one-sided sign-flip permutation p-value. Beyond the noise when the
    interval's lower end is above 0."""

    against_round: int
    delta: float
    interval: list[float] | None = None
    p_value: float | None = None
    better: bool = False


class Perplexity(BaseModel):
    """Real-text perplexity (held-out corpus:python-docs paragraphs) and its change over the base model."""

    items: int
    value: float
    base: float
    relative: float  # value / base - 1
    relative_interval: list[float] | None = None


class ModelRecord(BaseModel):
    """One round's model."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = IMPROVE_SCHEMA
    round: int
    dataset: str
    base_model: str  # the bundled name or path every round is tuned from
    generator: str = ""  # the model that generated this round's rows (round 0: none)
    trained_on_versions: list[int] = Field(default_factory=list)
    training_rows: int = 0  # verified rows trained on (held-out seeds never among them)
    real_rows: int = 0  # real corpus paragraphs mixed in
    training_seeds: int = 0  # distinct seeds the verified rows came from
    steps: int = 0
    tokens: int = 0
    lora: bool = True
    device: str = "cpu"
    learning_rate: float | None = None
    held_out: HeldOutEval | None = None
    perplexity: Perplexity | None = None
    paired: PairedTest | None = None
    promoted: bool = False
    why: str = ""
    files: dict[str, str] = Field(default_factory=dict)  # adapter / weights / gguf / card: paths under round{k}/
    seconds: dict[str, float] = Field(default_factory=dict)  # generate, train, evaluate, export
    created: str = Field(default_factory=_now)

    def summary(self) -> str:
        h = self.held_out
        acc = (f"pass@1 {h.pass_at_1:.1%} [{h.interval[0]:.1%}, {h.interval[1]:.1%}]" if h and h.interval
               else f"pass@1 {h.pass_at_1:.1%}" if h else "pass@1 -")
        ppl = f", perplexity {self.perplexity.value:.2f} ({self.perplexity.relative:+.1%})" if self.perplexity else ""
        verdict = "promoted" if self.promoted else "not promoted"
        return f"round {self.round}: {acc}{ppl}; {verdict}: {self.why}"


class RoundRun(BaseModel):
    """The version a round's run published (or why it published none)."""

    round: int
    version: int | None = None
    run_id: str = ""
    recipe_hash: str = ""
    generated: int = 0
    accepted: int = 0
    not_published_because: str | None = None
    seconds: float = 0.0


class LoopState(BaseModel):
    """The loop as it last ended: the model in use, and why it stopped (empty: it ran the rounds asked)."""

    current_round: int = 0
    rounds_done: int = 0
    stopped_because: str = ""
    updated: str = Field(default_factory=_now)


def dumps(record: BaseModel) -> str:
    return json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True)


def loads(kind: type[BaseModel], text: str) -> Any:
    return kind.model_validate_json(text)
