"""The method interface: how a seed becomes a row, over one or more rounds of engine requests.

A method is one module under `synthfactory/methods/` with a `Method` subclass, registered by name
in `synthfactory/methods/__init__.py`. The core drives every method the same way:

- `start(item)`: the state a work item begins with;
- `requests(draft)`: the chat requests one draft needs this round. The requests of every draft
  of a batch go to the engines in ONE call per round, so vLLM still batches them;
- `parse(draft, results)`: `Next(state)` for another round, `Row(fields)` when the row is made,
  or `Fail(reason)`: quarantined (could not be made) or rejected (made, but fails a screen);
- `columns`: the Arrow fields the method adds to the published table (its row contract; a name
  no other part of the line declares), and `internal`: the keys its rows carry that are not
  published (state `settle` reads, a failed draft's state);
- `instruction(row)`, `judge_items(row)`, `settle(row, scores)`: what the judge grades and how
  its scores become the row's; `content(row)` and `screen(row)`: what the screens read;
- `verify_claims(row)`, `settle_verified(row, checks)`: what the verifiers check and how their
  verdicts settle the row; `pairs(row)` (with `compares_pairs`): what a log-probability judge
  compares in both orders (position bias).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.model.lineage import stable_hash
from synthfactory.verify.base import Claim, Verdict

if TYPE_CHECKING:
    from synthfactory.grading import JudgeScore
    from synthfactory.model.plan import WorkItem
    from synthfactory.recipe import GenerationConfig

# OpenAI chat format as Arrow: what `datasets` loads as a list of {"role", "content"} dicts
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
Message = dict[str, str]


class MethodOptions(BaseModel):
    """A method's options (`generation.method_options`): strict, so a typo is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Next:
    """Another round: the draft's state for it."""

    state: dict[str, Any]


@dataclass(frozen=True)
class Row:
    """The row is made: its content columns (`text` always; the method's columns)."""

    fields: dict[str, Any]


@dataclass(frozen=True)
class Fail:
    """The row cannot ship. `quarantined`: it could not be made (unparseable, engine error);
    `rejected`: it was made but fails the method's own screen (e.g. an evolution that copies)."""

    reason: str
    status: str = "quarantined"
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Draft:
    """One row in the making: its work item, the round it is in, the method's state, and the
    engine usage of every round so far (summed into the row's cost columns)."""

    item: WorkItem
    round: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    node_id: str | None = None
    outcome: Row | Fail | None = None


class Method:
    """Base of every generation method; subclasses set `name`, `Options` and the hooks they change."""

    name: ClassVar[str]
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    description: ClassVar[str] = ""
    internal: ClassVar[tuple[str, ...]] = ("method_state",)  # row keys never published (`_partial`: quarantine only)
    compares_pairs: ClassVar[bool] = False  # `pairs` gives rows a position-bias check (its judge's `pair_columns`)

    def __init__(self, options: MethodOptions, generation: GenerationConfig) -> None:
        self.options = options
        self.generation = generation

    # -- the table --------------------------------------------------------------------------
    @property
    def columns(self) -> list[pa.Field]:
        """Arrow fields this method adds to the base row schema (lineage, prompt, text, cost)."""
        return []

    @property
    def max_rounds(self) -> int:
        return 1

    # -- making rows ------------------------------------------------------------------------
    def start(self, item: WorkItem) -> dict[str, Any]:
        return {}

    def requests(self, draft: Draft) -> list[ChatRequest]:
        raise NotImplementedError

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        raise NotImplementedError

    def identity(self, fields: dict[str, Any]) -> str:
        """What a row's content id hashes besides the prompt: the method's columns, canonically."""
        return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)

    # -- grading and screening ------------------------------------------------------------------
    def instruction(self, row: dict[str, Any]) -> str:
        """What the row's output answers: the judge's instruction, the echo screen's source."""
        return row["prompt"]

    def judge_items(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        """(instruction, response) pairs the judge grades for this row (one, unless candidates)."""
        return [(self.instruction(row), row["text"])]

    def settle(self, row: dict[str, Any], scores: list[JudgeScore]) -> dict[str, Any] | str:
        """The graded row, or the reason it is rejected."""
        verdict = scores[0]
        return {**row, "scores": json.dumps(verdict.raw, sort_keys=True), "score": verdict.score}

    def verify_claims(self, row: dict[str, Any]) -> list[Claim]:
        """What the verify stage checks: the answer the row ships (its last assistant turn, else
        `text`), with the seed's fields as the seeds gave them."""
        turns = [m["content"] for m in row.get("messages") or [] if m["role"] == "assistant"]
        seed = json.loads(row["seed"]) if row.get("seed") else {}
        return [Claim(response=turns[-1] if turns else row["text"], seed=seed, prompt=self.instruction(row))]

    def settle_verified(self, row: dict[str, Any], checks: list[dict[str, Verdict]]) -> dict[str, Any] | str:
        """The verified row, or `<name>: <reason>` of its first failure. `checks`: per claim, the
        verdicts of the verifiers that checked it, in recipe order (a failure ends a claim's checks)."""
        for verdicts in checks:
            for name, verdict in verdicts.items():
                if not verdict.passed:
                    return f"{name}: {verdict.reason}"
        return row

    def pairs(self, row: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(instruction, preferred, other) the judge compares in both orders (position bias); none
        unless the row is a preference between answers."""
        return []

    def content(self, row: dict[str, Any]) -> str:
        """All the text of a row: what dedup, decontamination and diversity metrics read."""
        return row["text"]

    def screen(self, row: dict[str, Any]) -> str | None:
        """The method's own screen (role order, early end, ...): a reason, or None to keep."""
        return None

    @classmethod
    def example(cls, row: dict[str, Any]) -> dict[str, Any]:
        """What a dataset card shows of one row."""
        return {"prompt": row.get("prompt"), "text": row.get("text")}

    # -- helpers for subclasses ---------------------------------------------------------------
    def request(self, draft: Draft, messages: list[Message] | tuple[Message, ...], *, part: int = 0,
                temperature: float | None = None, max_tokens: int | None = None,
                json_schema: dict[str, Any] | None = None) -> ChatRequest:
        """A request with the recipe's sampling and a seed of its own: the item's seed for round 0
        part 0 (so a one-round method samples exactly as before), a derived one otherwise."""
        sampling = self.generation.sampling
        seed = draft.item.sampling_seed if draft.round == 0 and part == 0 else \
            int(stable_hash(draft.item.sampling_seed, draft.round, part, length=8), 16) & 0x7FFFFFFF
        return ChatRequest(messages=tuple(messages), max_tokens=max_tokens or sampling.max_tokens,
                           temperature=sampling.temperature if temperature is None else temperature,
                           top_p=sampling.top_p, seed=seed, json_schema=json_schema)

    def system(self) -> list[Message]:
        prompt = self.generation.system_prompt
        return [{"role": "system", "content": prompt}] if prompt else []


ChatCall = Callable[[list[ChatRequest]], list[ChatResult]]


def run_rounds(method: Method, items: list[WorkItem], chat: ChatCall) -> tuple[list[Draft], int]:
    """Drive every item of a batch through the method's rounds, one engine call per round for all
    drafts still in play. Returns the finished drafts (each with a `Row` or `Fail` outcome) and the
    number of requests sent. An engine error on any request of a draft quarantines that draft."""
    drafts = [Draft(item=item, state=method.start(item)) for item in items]
    sent = 0
    for _ in range(method.max_rounds):
        active = [i for i, d in enumerate(drafts) if d.outcome is None]
        if not active:
            break
        asked = [method.requests(drafts[i]) for i in active]
        results = chat([r for requests in asked for r in requests]) if any(asked) else []
        sent += len(results)
        offset = 0
        for i, requests in zip(active, asked, strict=True):
            answers, offset = results[offset:offset + len(requests)], offset + len(requests)
            draft = replace(
                drafts[i], prompt_tokens=drafts[i].prompt_tokens + sum(a.prompt_tokens for a in answers),
                completion_tokens=drafts[i].completion_tokens + sum(a.completion_tokens for a in answers),
                latency_s=drafts[i].latency_s + sum(a.latency_s for a in answers),
                finish_reason=answers[-1].finish_reason if answers else drafts[i].finish_reason,
                node_id=next((a.node_id for a in reversed(answers) if a.node_id), drafts[i].node_id),
            )
            error = next((a.error for a in answers if a.error), None)
            outcome = Fail(error, fields=_partial(draft)) if error else method.parse(draft, answers)
            if isinstance(outcome, Next):
                draft = replace(draft, round=draft.round + 1, state=outcome.state)
            else:
                draft = replace(draft, outcome=outcome)
            drafts[i] = draft
    for i, draft in enumerate(drafts):
        if draft.outcome is None:  # a method that asks for more rounds than it declares: our bug, kept visible
            drafts[i] = replace(draft, outcome=Fail(f"method_error: {method.name} did not finish in "
                                                    f"{method.max_rounds} rounds", fields=_partial(draft)))
    return drafts, sent


def _partial(draft: Draft) -> dict[str, Any]:
    """What a failed draft had made so far, kept with it in the quarantine."""
    return {"text": draft.state.get("last_text", ""), "method_state": json.dumps(draft.state, default=str)}


def turns_text(messages: list[Message], skip_system: bool = True) -> str:
    """A dialogue as plain text, one `Role: content` block per message."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages
                       if not (skip_system and m["role"] == "system"))


def strip_label(text: str, *labels: str) -> str:
    """`Instruction: do X` -> `do X`; also strips quotes a model wraps its answer in."""
    text = text.strip()
    lowered = text.lower()
    for label in labels:
        for form in (f"{label}:", f"**{label}:**", f"#{label}#:", f"#{label}#"):
            if lowered.startswith(form.lower()):
                text = text[len(form):].strip()
                lowered = text.lower()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text
