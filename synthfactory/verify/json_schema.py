"""`json_schema`: the response is a JSON object that validates against a JSON Schema (Draft 2020-12).

The one validation the factory has: the `structured` method quarantines a row with the same
`validate_json` and so the same reason, `schema_violation: <path>: <what>` (path as `$.items[2].name`,
the most relevant error by jsonschema's `best_match`). The verifier also accepts a response wrapped
in one Markdown code fence (```json ... ```), as chat models often write it; the structured method,
whose engines constrain decoding to the schema, parses the text as it is.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any

from pydantic import Field, field_validator

from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions

FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*)\n```$", re.DOTALL)


def violation_path(path: Any) -> str:
    """jsonschema's deque path (or pydantic's loc tuple) as `$.items[2].name`."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON Schema (one line naming where), or None."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"schema: not a valid JSON Schema at {where}: {exc.message}"
    return None


def validator_for(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def validate_json(raw: str, validator: Any, cut_off: bool = False) -> tuple[Any, str | None]:
    """(the parsed value, None) when `raw` is JSON valid under `validator`, else (the value or None,
    `schema_violation: <path>: <what>`); `cut_off`: the text ended at max_tokens (said in the reason)."""
    from jsonschema.exceptions import best_match

    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        cut = " (cut off at max_tokens)" if cut_off else ""
        return None, f"schema_violation: $: not JSON ({exc.msg}){cut}"
    error = best_match(validator.iter_errors(value))
    if error is not None:
        return value, f"schema_violation: {violation_path(error.absolute_path)}: {error.message}"
    return value, None


def unfenced(text: str) -> str:
    """The text inside one surrounding Markdown code fence, else the text (stripped)."""
    text = text.strip()
    match = FENCE.match(text)
    return match.group(1).strip() if match else text


class JsonSchemaOptions(VerifierOptions):
    model_config = {**VerifierOptions.model_config, "populate_by_name": True}

    json_schema: dict[str, Any] = Field(alias="schema", description="a JSON Schema object (inline)")

    @field_validator("json_schema")
    @classmethod
    def _valid(cls, schema: dict[str, Any]) -> dict[str, Any]:
        problem = schema_problem(schema)
        if problem:
            raise ValueError(problem)
        return schema


class JsonSchemaVerifier(Verifier):
    """The response is one JSON object valid under `options.schema`."""

    name = "json_schema"
    Options = JsonSchemaOptions
    needs = ()
    description = "the response is a JSON object valid under a JSON Schema"
    options: JsonSchemaOptions

    @cached_property
    def validator(self) -> Any:
        return validator_for(self.options.json_schema)

    def verify(self, claim: Claim) -> Verdict:
        value, reason = validate_json(unfenced(claim.response or ""), self.validator)
        if reason is None and not isinstance(value, dict):
            reason = f"schema_violation: $: not a JSON object (a {type(value).__name__})"
        if reason is not None:
            return Verdict(False, reason, {"error": reason.removeprefix("schema_violation: ")})
        return Verdict(True, "ok", {"fields": sorted(value)})
