"""`text`: one prompt per seed, one answer; the row holds `prompt` and `text` (the original rows)."""

from __future__ import annotations

from typing import Any

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import Draft, Fail, Method, Next, Row


class TextMethod(Method):
    name = "text"
    description = "one answer per rendered prompt; rows hold `prompt` and `text`"

    def requests(self, draft: Draft) -> list[ChatRequest]:
        return [self.request(draft, draft.item.messages)]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        text = results[0].text.strip()
        return Row({"text": text}) if text else Fail("empty_generation")

    def identity(self, fields: dict[str, Any]) -> str:
        return fields["text"]  # ids as before methods existed: published datasets keep theirs
