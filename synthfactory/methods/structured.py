"""`structured`: output constrained to a JSON Schema, parsed and validated; its fields become columns.

The recipe gives the schema inline (`method_options.schema`) or as a dotted path to a pydantic
model (`method_options.model: package.module:Model`). Engines constrain decoding to it (llama.cpp
grammar, vLLM structured outputs, OpenAI `json_schema`); a row that still does not validate is
quarantined `schema_violation: <path>: <what>` by the same validation as the `json_schema` verifier
(`synthfactory.verify.json_schema.validate_json`).
"""

from __future__ import annotations

import importlib
import json
from functools import cached_property
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field, model_validator

from synthfactory.engines.base import ChatRequest, ChatResult
from synthfactory.methods.base import Draft, Fail, Method, MethodOptions, Next, Row
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.verify.json_schema import schema_problem, validate_json, validator_for, violation_path

SCALARS = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}


def load_model(path: str) -> type[BaseModel]:
    """`package.module:Model` or `package.module.Model` -> the pydantic model class."""
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module or not name:
        raise ValueError(f"model: {path!r} is not a dotted path like package.module:Model")
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model: cannot import {path!r} ({exc})") from None
    if not (isinstance(value, type) and issubclass(value, BaseModel)):
        raise ValueError(f"model: {path!r} is not a pydantic model class")
    return value


class StructuredOptions(MethodOptions):
    model_config = {**MethodOptions.model_config, "populate_by_name": True}

    json_schema: dict[str, Any] | None = Field(None, alias="schema", description="a JSON Schema object (inline)")
    model: str | None = Field(None, description="dotted path to a pydantic model, e.g. mypkg.rows:Recipe")
    schema_in_prompt: bool = Field(True, description="append the fields to the prompt (small models need it)")

    @model_validator(mode="after")
    def _schema(self) -> StructuredOptions:
        if (self.json_schema is None) == (self.model is None):
            raise ValueError("give exactly one of schema (a JSON Schema) or model (a pydantic model path)")
        schema = self.resolved_schema()
        problem = schema_problem(schema)
        if problem:
            raise ValueError(problem)
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
            raise ValueError("schema: must be an object schema with properties (they become columns)")
        clash = sorted(set(schema["properties"]) & set(ROW_SCHEMA.names))
        if clash:
            raise ValueError(f"schema: properties {clash} clash with lineage/quality columns; rename them")
        return self

    def resolved_schema(self) -> dict[str, Any]:
        if self.json_schema is not None:
            return self.json_schema
        assert self.model is not None  # one of the two is given (`_schema`)
        return load_model(self.model).model_json_schema()


def arrow_type(spec: dict[str, Any]) -> pa.DataType:
    """A column's type from its property schema; arrays, objects and unions are stored as JSON text."""
    kind = spec.get("type")
    return SCALARS.get(kind, pa.string()) if isinstance(kind, str) else pa.string()


class StructuredMethod(Method):
    name = "structured"
    Options = StructuredOptions
    description = "JSON constrained to a schema and validated; each field a column"
    options: StructuredOptions

    @cached_property
    def schema(self) -> dict[str, Any]:
        return self.options.resolved_schema()

    @cached_property
    def model(self) -> type[BaseModel] | None:
        return load_model(self.options.model) if self.options.model else None

    @property
    def columns(self) -> list[pa.Field]:
        return [pa.field("json", pa.string()),
                *(pa.field(name, arrow_type(spec)) for name, spec in self.schema["properties"].items())]

    def _hint(self) -> str:
        fields = ", ".join(f"{name} ({spec.get('type', 'value')})" for name, spec in self.schema["properties"].items())
        return f"\n\nAnswer only with a JSON object with the fields: {fields}."

    def requests(self, draft: Draft) -> list[ChatRequest]:
        messages = list(draft.item.messages)
        if self.options.schema_in_prompt:
            messages[-1] = {"role": "user", "content": messages[-1]["content"] + self._hint()}
        return [self.request(draft, messages, json_schema=self.schema)]

    def parse(self, draft: Draft, results: list[ChatResult]) -> Next | Row | Fail:
        raw = results[0].text.strip()
        kept = {"text": raw}
        value, violation = validate_json(raw, validator_for(self.schema), cut_off=results[0].finish_reason == "length")
        if violation is not None:
            return Fail(violation, fields=kept)
        if self.model is not None:
            from pydantic import ValidationError

            try:
                self.model.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                return Fail(f"schema_violation: {violation_path(first['loc'])}: {first['msg']}", fields=kept)
        canonical = json.dumps(value, ensure_ascii=False, sort_keys=True)
        columns = {name: self._cell(value.get(name), spec) for name, spec in self.schema["properties"].items()}
        return Row({"json": canonical, "text": canonical, **columns})

    @staticmethod
    def _cell(value: Any, spec: dict[str, Any]) -> Any:
        if value is None or spec.get("type") in SCALARS:
            return value
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    @classmethod
    def example(cls, row: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": row.get("prompt"), "json": row.get("json")}
