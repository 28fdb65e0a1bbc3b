"""Rows are built here and only here, from one declared schema per method.

Every row has the base `ROW_SCHEMA` (lineage, prompt, text, cost); the published table adds what
the recipe's line declares (`synthfactory.model.columns.published_schema`). Generated rows, real
rows mixed in and failed drafts (kept in the quarantine) all come from the functions below.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Protocol

import pyarrow as pa

from synthfactory.model.lineage import row_id_for
from synthfactory.model.plan import BatchPlan, RunPlan, WorkItem


class Method(Protocol):
    """What rows need of a generation method (`synthfactory.methods.base.Method`): its columns and
    what identifies a row it made."""

    @property
    def name(self) -> str: ...

    @property
    def columns(self) -> list[pa.Field]: ...

    def identity(self, fields: dict[str, Any]) -> Any: ...


class Draft(Protocol):
    """What rows need of a finished draft (`synthfactory.methods.base.Draft`): read-only, as a
    frozen dataclass's fields are."""

    @property
    def item(self) -> WorkItem: ...
    @property
    def node_id(self) -> str | None: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def latency_s(self) -> float: ...


def generated_row(plan: RunPlan, batch: BatchPlan, method: Method, draft: Draft,
                  fields: dict[str, Any], sampling_json: str) -> dict[str, Any]:
    """A generated row: lineage and cost from the plan and the draft's rounds, content from `fields`
    (`text` and the method's columns; extra keys travel along to the quarantine, not the table)."""
    item = draft.item
    text = fields.get("text") or ""
    return {
        **{f.name: None for f in method.columns},
        "id": row_id_for(item.prompt, method.identity(fields)), "seed_id": item.seed.seed_id,
        "source": "synthetic", "generation_depth": item.seed.generation_depth + 1,
        "generator_model": plan.generator.model, "prompt_template_hash": plan.template_hash,
        "sampling": json.dumps({**json.loads(sampling_json), "seed": item.sampling_seed}, sort_keys=True),
        "judge_model": plan.judge_model, "scores": None, "score": None, "verification": None, "run_id": plan.run_id,
        "batch_id": batch.batch_id, "created_at": datetime.now(timezone.utc),
        "recipe_hash": plan.recipe_hash, "version": plan.version, "batch_index": batch.batch_index,
        "node_id": draft.node_id,
        "seed": json.dumps(item.seed.fields, ensure_ascii=False, sort_keys=True, default=str),
        "prompt": item.prompt, "finish_reason": draft.finish_reason,
        "prompt_tokens": draft.prompt_tokens, "completion_tokens": draft.completion_tokens,
        "latency_s": draft.latency_s, "judge_prompt_tokens": 0, "judge_completion_tokens": 0,
        "judge_latency_s": 0.0, **fields, "text": text, "text_chars": len(text),
    }


def real_row(template: dict[str, Any], text: str) -> dict[str, Any]:
    """A real row mixed into a batch: lineage source=real, depth 0, no generator cost or score."""
    return {**{key: None for key in template}, "id": row_id_for("", text), "source": "real",
            "generation_depth": 0, "text": text, "text_chars": len(text),
            "run_id": template["run_id"], "batch_id": template["batch_id"],
            "created_at": template["created_at"], "recipe_hash": template["recipe_hash"],
            "version": template["version"], "batch_index": template["batch_index"],
            "prompt_tokens": 0, "completion_tokens": 0, "judge_prompt_tokens": 0,
            "judge_completion_tokens": 0, "latency_s": 0.0, "judge_latency_s": 0.0}
