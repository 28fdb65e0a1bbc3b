"""`evol`: Evol-Instruct (Xu et al., 2023, WizardLM): a seed instruction is rewritten over R rounds,
each round one operation (deepen, add constraints, concretise, more reasoning), then answered.

Each rewrite is screened for the failures the paper eliminates: a copy of its input, a refusal,
a rewrite shorter than its input. A failed evolution is rejected with the round and operation.
Rows are SFT pairs like `instruct` (`instruction`, `response`, `messages`), plus `evolution`
(every round's operation and instruction, JSON) and `evol_operations`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import Draft, Fail, MethodOptions, Next, Row, strip_label
from synthfactory.methods.instruct import InstructMethod, sft_messages
from synthfactory.model.lineage import stable_hash
from synthfactory.quality.text import is_refusal, words

Operation = Literal["deepen", "add_constraints", "concretise", "increase_reasoning"]
OPERATIONS: dict[str, str] = {
    "deepen": "If the prompt asks about a topic, increase the depth and breadth of what it asks.",
    "add_constraints": "Add one more constraint or requirement to the prompt.",
    "concretise": "Replace general concepts in the prompt with more specific ones.",
    "increase_reasoning": "If the prompt can be solved in a few simple steps, rewrite it to explicitly "
                          "require multiple-step reasoning.",
}
REWRITER = (
    "I want you to act as a prompt rewriter. Rewrite the given prompt into a more complex version that "
    "a capable AI assistant would find a bit harder to handle. The rewritten prompt must be reasonable, "
    "understood by humans and answerable, and add only 10 to 20 words. {operation}\n"
    "Do not answer the prompt. Write only the rewritten prompt.\n\n#Given Prompt#:\n{prompt}\n\n#Rewritten Prompt#:"
)
COPY_JACCARD = 0.9  # word-set overlap at which a rewrite is a copy of its input
DEFAULT_OPERATIONS: tuple[Operation, ...] = ("deepen", "add_constraints", "concretise")


class EvolOptions(MethodOptions):
    rounds: int = Field(2, ge=1, le=5, description="rewriting rounds before the answer")
    operations: list[Operation] = Field(default_factory=lambda: list(DEFAULT_OPERATIONS),
                                        min_length=1, description="the operations a round picks from")
    rewrite_max_tokens: int | None = Field(None, ge=8, le=4096, description="default: generation.sampling.max_tokens")


def evolution_failure(before: str, after: str) -> str | None:
    """Why a rewrite fails (Evol-Instruct's elimination), or None."""
    if not after:
        return "empty rewrite"
    if is_refusal(after):
        return "refusal"
    if any(marker in after.lower() for marker in ("given prompt", "rewritten prompt")):
        return "mentions the rewriting task"
    old, new = set(words(before)), set(words(after))
    if old and len(old & new) / len(old | new) >= COPY_JACCARD:
        return "copy of the input"
    if len(words(after)) < len(words(before)):
        return f"shorter than the input ({len(words(after))} < {len(words(before))} words)"
    return None


class EvolMethod(InstructMethod):
    """An `instruct` row whose instruction was evolved from the seed's instead of written fresh."""

    name = "evol"
    Options = EvolOptions
    description = "a seed instruction rewritten over R screened rounds (Evol-Instruct), then answered"
    # its options are its own, not instruct's: it overrides `requests`, the one hook that reads those
    options: EvolOptions  # type: ignore[assignment]

    @property
    def columns(self) -> list[pa.Field]:
        return [*super().columns, pa.field("evolution", pa.string()),
                pa.field("evol_operations", pa.list_(pa.string()))]

    @property
    def max_rounds(self) -> int:
        return self.options.rounds + 1

    def operation(self, draft: Draft) -> str:
        """Each round's operation: drawn from the item's seed, so a rerun evolves the same way."""
        ops = self.options.operations
        return ops[int(stable_hash(draft.item.sampling_seed, draft.round, length=8), 16) % len(ops)]

    def start(self, item: Any) -> dict[str, Any]:
        return {"instruction": item.prompt, "evolution": []}

    def requests(self, draft: Draft) -> list[ChatRequest]:
        if draft.round < self.options.rounds:
            ask = REWRITER.format(operation=OPERATIONS[self.operation(draft)], prompt=draft.state["instruction"])
            return [self.request(draft, [{"role": "user", "content": ask}], max_tokens=self.options.rewrite_max_tokens)]
        return [self.request(draft, [*self.system(), {"role": "user", "content": draft.state["instruction"]}])]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        text = results[0].text.strip()
        before, evolution = draft.state["instruction"], list(draft.state["evolution"])
        if draft.round < self.options.rounds:
            operation = self.operation(draft)
            after = strip_label(text, "#Rewritten Prompt#", "Rewritten Prompt", "Prompt")
            evolution.append({"round": draft.round + 1, "operation": operation, "instruction": after})
            failure = evolution_failure(before, after)
            if failure:
                return Fail(f"evol_failed: round {draft.round + 1} ({operation}): {failure}", status="rejected",
                            fields=self._fields(before, "", evolution))
            return Next({"instruction": after, "evolution": evolution, "last_text": after})
        if not text:
            return Fail("empty_generation: response", fields=self._fields(before, "", evolution))
        return Row(self._fields(before, text, evolution))

    def _fields(self, instruction: str, response: str, evolution: list[dict[str, Any]]) -> dict[str, Any]:
        return {"instruction": instruction, "response": response, "text": response,
                "messages": sft_messages(self.system(), instruction, response) if response else None,
                "evolution": json.dumps(evolution, ensure_ascii=False),
                "evol_operations": [step["operation"] for step in evolution]}

    @classmethod
    def example(cls, row: dict[str, Any]) -> dict[str, Any]:
        return {"evolution": json.loads(row["evolution"]) if row.get("evolution") else None,
                "messages": row.get("messages")}
