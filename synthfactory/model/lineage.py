"""Stable hashes for ids and the lineage columns every published row carries."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

LINEAGE_COLUMNS = (
    "id", "seed_id", "source", "generation_depth", "generator_model", "prompt_template_hash",
    "sampling", "judge_model", "scores", "score", "run_id", "batch_id", "created_at", "verification",
)

# What every row has, the base of every published table: lineage first, then content and cost.
# Whatever a method, screen, verifier, judge or stage adds on top it declares itself (its `columns`);
# the published schema is this plus those declarations (`synthfactory.model.columns.published_schema`).
ROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("seed_id", pa.string()), ("source", pa.string()),
    ("generation_depth", pa.int32()), ("generator_model", pa.string()),
    ("prompt_template_hash", pa.string()), ("sampling", pa.string()),
    # null without a judge; judges and the verify stage declare them again as what they fill
    ("judge_model", pa.string()), ("scores", pa.string()), ("score", pa.float64()),
    ("run_id", pa.string()), ("batch_id", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("recipe_hash", pa.string()), ("version", pa.int32()), ("batch_index", pa.int32()),
    ("node_id", pa.string()),  # the Ray node whose engine generated the row
    # the verify stage's verdicts, JSON {name: {passed, reason, details}} (null: real rows, no verification)
    ("verification", pa.string()),
    ("seed", pa.string()), ("prompt", pa.string()), ("text", pa.string()), ("finish_reason", pa.string()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("latency_s", pa.float64()),
    ("judge_prompt_tokens", pa.int32()), ("judge_completion_tokens", pa.int32()),
    ("judge_latency_s", pa.float64()), ("text_chars", pa.int32()),
])


def stable_hash(*parts: Any, length: int = 16) -> str:
    """sha256 over the canonical JSON of `parts`; the same inputs give the same id anywhere."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def batch_id_for(recipe_hash: str, version: int, batch_index: int) -> str:
    """Deterministic: a rerun of an unfinished run plans the very same batches."""
    return "b" + stable_hash(recipe_hash, version, batch_index)


def row_id_for(prompt: str, text: str) -> str:
    """Content hash of a generated row: same prompt and answer, same id."""
    return stable_hash(prompt, text, length=24)


def sampling_seed(recipe_seed: int, version: int, batch_index: int, row_index: int, attempt: int = 0,
                  part: int = 0) -> int:
    """Per-request seed: reproducible, and different for every row, run version, retry and part
    (e.g. each candidate of a preference row); part 0 keeps the seeds rows had before parts."""
    parts = (recipe_seed, version, batch_index, row_index, attempt) + ((part,) if part else ())
    return int(stable_hash(*parts, length=8), 16) & 0x7FFFFFFF
