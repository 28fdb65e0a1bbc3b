"""`text`: one prompt per seed, one answer; the row holds `prompt` and `text` (the original rows).

`keep: code_block` keeps only the answer's code: its last ```python block (the one `python_tests`
runs), so the prose a small model writes around verified code (measured on the bundled model: often
false, e.g. "uses Python's built-in `add` function") is not published as part of the answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import Draft, Fail, Method, MethodOptions, Next, Row


class TextOptions(MethodOptions):
    keep: Literal["all", "code_block"] = Field(
        "all", description="all: the whole answer; code_block: only its last python code block "
                           "(none: quarantined as no_code_block)")


class TextMethod(Method):
    name = "text"
    Options = TextOptions
    description = "one answer per rendered prompt; rows hold `prompt` and `text`"
    options: TextOptions

    def requests(self, draft: Draft) -> list[ChatRequest]:
        return [self.request(draft, draft.item.messages)]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        text = results[0].text.strip()
        if text and self.options.keep == "code_block":
            from synthfactory.verify.python_tests import extract_code

            code = extract_code(text)
            if code is None:
                return Fail("no_code_block", fields={"text": text})
            text = f"```python\n{code.rstrip()}\n```"
        return Row({"text": text}) if text else Fail("empty_generation")

    def identity(self, fields: dict[str, Any]) -> str:
        return fields["text"]  # ids as before methods existed: published datasets keep theirs
