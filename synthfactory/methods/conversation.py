"""`conversation`: multi-turn dialogues; the model plays the user (from the seed's persona or
topic) and the assistant in turn, one round per message, every dialogue of a batch in one call.

Rows hold `messages` (the whole dialogue, OpenAI chat format) and `turns` (user/assistant
exchanges reached). The judge grades the dialogue. Screens reject a dialogue that ended early
(an empty message), repeats a turn, or breaks role order (the simulated user speaking as the
assistant), each with its reason.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
from pydantic import Field

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import (
    MESSAGES,
    Draft,
    Fail,
    Message,
    Method,
    MethodOptions,
    Next,
    Row,
    strip_label,
    turns_text,
)
from synthfactory.quality.text import words

USER_SYSTEM = (
    "You play the user in a conversation with an AI assistant. Stay in the user's role: ask, follow "
    "up, push back or react to the assistant's last answer. Never answer as the assistant. Write "
    "only the user's next message, in one to three sentences."
)
SPEAKS_AS_ASSISTANT = re.compile(r"^\W*(assistant|ai|bot|chatbot)\s*:", re.IGNORECASE)
REPEAT_JACCARD = 0.85  # word-set overlap at which a message repeats an earlier one


class ConversationOptions(MethodOptions):
    turns: int = Field(3, ge=1, le=10, description="user/assistant exchanges per dialogue")
    user_system: str = Field(USER_SYSTEM, min_length=1, description="system prompt of the simulated user")


class ConversationMethod(Method):
    name = "conversation"
    Options = ConversationOptions
    description = "multi-turn dialogues, the user simulated from the seed; rows hold `messages`"
    options: ConversationOptions

    @property
    def columns(self) -> list[pa.Field]:
        return [pa.field("messages", MESSAGES), pa.field("turns", pa.int32())]

    @property
    def max_rounds(self) -> int:
        return 2 * self.options.turns

    def start(self, item: Any) -> dict[str, Any]:
        return {"dialogue": []}

    def requests(self, draft: Draft) -> list[ChatRequest]:
        dialogue: list[Message] = draft.state["dialogue"]
        if draft.round % 2 == 0:  # the simulated user: persona/topic from the seed, the dialogue so far
            so_far = turns_text(dialogue) if dialogue else "(nothing yet: write the user's first message)"
            ask = f"{draft.item.prompt}\n\nConversation so far:\n{so_far}\n\nWrite the user's next message."
            return [self.request(draft, [{"role": "system", "content": self.options.user_system},
                                         {"role": "user", "content": ask}])]
        return [self.request(draft, [*self.system(), *dialogue])]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        dialogue: list[Message] = list(draft.state["dialogue"])
        user_turn = draft.round % 2 == 0
        text = strip_label(results[0].text, "user") if user_turn else results[0].text.strip()
        if text:
            dialogue.append({"role": "user" if user_turn else "assistant", "content": text})
        finished = not text or draft.round + 1 >= self.max_rounds
        if not finished:
            return Next({"dialogue": dialogue, "last_text": text})
        if not dialogue:
            return Fail("empty_generation: first user message")
        if dialogue[-1]["role"] == "user":  # a user message nobody answered is not training data
            dialogue = dialogue[:-1]
        if not dialogue:
            return Fail("empty_generation: first assistant message")
        messages = [*self.system(), *dialogue]
        return Row({"messages": messages, "turns": sum(m["role"] == "assistant" for m in dialogue),
                    "text": turns_text(messages)})

    def instruction(self, row: dict[str, Any]) -> str:
        """The persona/topic prompt: the echo screen catches a dialogue that parrots it (the first
        user message is part of the dialogue's text, so it cannot be the echo source)."""
        return row["prompt"]

    def judge_items(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        return [(f"Hold a helpful, accurate conversation with a user. The user: {row['prompt']}", row["text"])]

    def screen(self, row: dict[str, Any]) -> str | None:
        messages = [m for m in row["messages"] if m["role"] != "system"]
        for position, message in enumerate(messages):
            expected = "user" if position % 2 == 0 else "assistant"
            if message["role"] != expected:
                return f"role_order: message {position + 1} is {message['role']}, expected {expected}"
            if expected == "user" and SPEAKS_AS_ASSISTANT.match(message["content"]):
                return f"role_order: message {position + 1} (user) speaks as the assistant"
        seen: list[tuple[int, set[str]]] = []
        for position, message in enumerate(messages):
            tokens = set(words(message["content"]))
            for earlier, earlier_tokens in seen:
                union = tokens | earlier_tokens
                if union and len(tokens & earlier_tokens) / len(union) >= REPEAT_JACCARD:
                    return f"repeated_turn: message {position + 1} repeats message {earlier + 1}"
            seen.append((position, tokens))
        if row["turns"] < self.options.turns:
            return f"ended_early: {row['turns']} of {self.options.turns} turns"
        return None

    @classmethod
    def example(cls, row: dict[str, Any]) -> dict[str, Any]:
        return {"messages": row.get("messages")}
