"""`instruct`: the model writes an instruction from the seed, then answers it in a second round.

Rows hold `instruction`, `response` and `messages` (OpenAI chat format, what TRL's SFTTrainer
reads); the judge grades the response against the instruction.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import MESSAGES, Draft, Fail, Message, Method, MethodOptions, Next, Row, strip_label

INSTRUCTION_SYSTEM = (
    "You write one instruction or question that a user could give an AI assistant. Write only the "
    "instruction itself: no answer, no preamble, no quotes."
)


class InstructOptions(MethodOptions):
    instruction_system: str = Field(INSTRUCTION_SYSTEM, min_length=1,
                                    description="system prompt of the round that writes the instruction")
    instruction_max_tokens: int | None = Field(None, ge=8, le=4096,
                                               description="default: generation.sampling.max_tokens")


def sft_messages(system: list[Message], instruction: str, response: str) -> list[Message]:
    return [*system, {"role": "user", "content": instruction}, {"role": "assistant", "content": response}]


class InstructMethod(Method):
    name = "instruct"
    Options: ClassVar[type[MethodOptions]] = InstructOptions  # evol, a subclass, has options of its own
    description = "an instruction written from each seed, then its answer; rows hold `messages` for SFT"
    options: InstructOptions

    @property
    def columns(self) -> list[pa.Field]:
        return [pa.field("instruction", pa.string()), pa.field("response", pa.string()),
                pa.field("messages", MESSAGES)]

    @property
    def max_rounds(self) -> int:
        return 2

    def requests(self, draft: Draft) -> list[ChatRequest]:
        if draft.round == 0:
            return [self.request(draft, [{"role": "system", "content": self.options.instruction_system},
                                         {"role": "user", "content": draft.item.prompt}],
                                 max_tokens=self.options.instruction_max_tokens)]
        return [self.request(draft, [*self.system(), {"role": "user", "content": draft.state["instruction"]}])]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        text = results[0].text.strip()
        if draft.round == 0:
            instruction = strip_label(text, "instruction", "question")
            if not instruction:
                return Fail("empty_generation: instruction")
            return Next({"instruction": instruction, "last_text": instruction})
        if not text:
            return Fail("empty_generation: response", fields={"instruction": draft.state["instruction"], "text": ""})
        instruction = draft.state["instruction"]
        return Row({"instruction": instruction, "response": text, "text": text,
                    "messages": sft_messages(self.system(), instruction, text)})

    def instruction(self, row: dict[str, Any]) -> str:
        return row["instruction"]

    def content(self, row: dict[str, Any]) -> str:
        return f"{row['instruction']}\n\n{row['text']}"

    @classmethod
    def example(cls, row: dict[str, Any]) -> dict[str, Any]:
        return {"messages": row.get("messages")}
