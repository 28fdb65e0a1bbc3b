"""Every extension point by name: methods, judges, screens, engines, verifiers, and the stages
of the line.

A registry maps a name a recipe can use to where its implementation lives ("module:attribute")
and to the few facts the recipe schema needs to check a recipe (e.g. whether a judge is an LLM).
Listing names and reading facts imports nothing, so the schema validates names here without
importing any implementation (no import circle); `load` imports the one module a name needs.

Adding a method, judge, screen, engine, verifier or stage is its module plus one line below
(README "Add a ...").
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One registered name: where it lives and what the schema may know without importing it."""

    name: str
    target: str  # "package.module:Attribute"
    facts: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """Names of one kind of extension, in the order they were registered (screens run in it)."""

    def __init__(self, kind: str, entries: Mapping[str, str | tuple[str, Mapping[str, Any]]]) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        for name, value in entries.items():
            target, facts = (value, {}) if isinstance(value, str) else value
            if ":" not in target:
                raise ValueError(f"{kind} {name!r}: target {target!r} is not 'module:attribute'")
            self._entries[name] = Entry(name, target, MappingProxyType(dict(facts)))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entry(self, name: str) -> Entry:
        """The entry for `name`; ValueError naming the known ones otherwise (the schema's message)."""
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none yet"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def check(self, name: str) -> str:
        """`name` if it is registered (for pydantic validators), else ValueError."""
        return self.entry(name).name

    def fact(self, name: str, key: str, default: Any = None) -> Any:
        return self.entry(name).facts.get(key, default)

    def where(self, **facts: Any) -> tuple[str, ...]:
        """The names whose facts hold every given value, in registry order."""
        return tuple(e.name for e in self._entries.values() if all(e.facts.get(k) == v for k, v in facts.items()))

    def load(self, name: str) -> Any:
        """Import the module `name` lives in and return its attribute (the only import a registry does)."""
        module, _, attribute = self.entry(name).target.partition(":")
        return getattr(importlib.import_module(module), attribute)


METHODS = Registry("method", {
    "text": "synthfactory.methods.text:TextMethod",
    "instruct": "synthfactory.methods.instruct:InstructMethod",
    "conversation": "synthfactory.methods.conversation:ConversationMethod",
    "preference": "synthfactory.methods.preference:PreferenceMethod",
    "structured": "synthfactory.methods.structured:StructuredMethod",
    "evol": "synthfactory.methods.evol:EvolMethod",
})

# llm: the judge asks an engine (it takes engine, model, options and a rubric); others are signals
JUDGES = Registry("judge", {
    "json": ("synthfactory.grading.llm:JsonJudge", {"llm": True}),
    "logprobs": ("synthfactory.grading.llm:LogprobJudge", {"llm": True, "logprobs": True}),
    "relevance": ("synthfactory.grading.signals:RelevanceJudge", {"llm": False}),
    "form": ("synthfactory.grading.signals:FormJudge", {"llm": False}),
    # learned: a classifier trained on labelled rows over signals and the other judges' scores (runs after them)
    "learned": ("synthfactory.grading.learned:LearnedJudge", {"llm": False, "learned": True,
                                                            "needs": ("labels",)}),
})

# run in this order before the judge; each reads its own keys of `quality.filters`
SCREENS = Registry("screen", {
    "length": "synthfactory.quality.screens:LengthScreen",
    "repetition": "synthfactory.quality.screens:RepetitionScreen",
    "refusal": "synthfactory.quality.screens:RefusalScreen",
    "language": "synthfactory.quality.screens:LanguageScreen",
    "instruction_echo": "synthfactory.quality.screens:InstructionEchoScreen",
})

# each back end's class declares its `Options` model and where its replicas run (engines/base.py)
ENGINES = Registry("engine", {
    "llamacpp": "synthfactory.engines.llamacpp:LlamaCppEngine",
    "vllm": "synthfactory.engines.vllm:VLLMEngine",  # the engine environment: deploy/gpu/requirements.txt
    "openai": "synthfactory.engines.openai:OpenAIEngine",
})

# checks that cannot be fooled, `verification: [{name, method, options}]` in a recipe (verify/base.py);
# needs: the seed fields each reads (a recipe whose seeds lack one exits 2; "a|b": either)
VERIFIERS = Registry("verifier", {
    "math_answer": ("synthfactory.verify.math_answer:MathAnswerVerifier", {"needs": ("answer",)}),
    "math_working": ("synthfactory.verify.math_working:MathWorkingVerifier", {"needs": ()}),
    "python_tests": ("synthfactory.verify.python_tests:PythonTestsVerifier", {"needs": ("tests|io_tests",)}),
    "grounded": ("synthfactory.verify.grounded:GroundedVerifier", {"needs": ("source",)}),
    "json_schema": ("synthfactory.verify.json_schema:JsonSchemaVerifier", {"needs": ()}),
})


# the stage line, in this order: every batch goes through each (a stage is its module plus one
# line here; the driver, both executors, the progress bar and the report read the line from here)
STAGES = Registry("stage", {
    "generate": "synthfactory.run.stages.generate:GenerateStage",
    "screen": "synthfactory.run.stages.screen:ScreenStage",
    "verify": "synthfactory.run.stages.verify:VerifyStage",
    "grade": "synthfactory.run.stages.grade:GradeStage",
    "filter": "synthfactory.run.stages.filter:FilterStage",
    "measure": "synthfactory.run.stages.measure:MeasureStage",
    "validate": "synthfactory.run.stages.validate:ValidateStage",
})

REGISTRIES = {r.kind: r for r in (METHODS, JUDGES, SCREENS, ENGINES, VERIFIERS, STAGES)}
