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

# The published table's schema: lineage first, then content, cost and quality columns.
ROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("seed_id", pa.string()), ("source", pa.string()),
    ("generation_depth", pa.int32()), ("generator_model", pa.string()),
    ("prompt_template_hash", pa.string()), ("sampling", pa.string()), ("judge_model", pa.string()),
    ("scores", pa.string()), ("score", pa.float64()), ("run_id", pa.string()), ("batch_id", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("recipe_hash", pa.string()), ("version", pa.int32()), ("batch_index", pa.int32()),
    ("node_id", pa.string()),  # the Ray node whose engine generated the row
    # the verify stage's verdicts, JSON {name: {passed, reason, details}} (null: real rows, no verification)
    ("verification", pa.string()),
    ("seed", pa.string()), ("prompt", pa.string()), ("text", pa.string()), ("finish_reason", pa.string()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("latency_s", pa.float64()),
    ("judge_prompt_tokens", pa.int32()), ("judge_completion_tokens", pa.int32()),
    ("judge_latency_s", pa.float64()), ("text_chars", pa.int32()),
    # quality columns (the guards add them; the GX suite can gate on each)
    ("repeated_ngram_ratio", pa.float64()), ("duplicate_line_ratio", pa.float64()), ("language", pa.string()),
    ("batch_near_dup_rate", pa.float64()), ("batch_distinct_1", pa.float64()), ("batch_distinct_2", pa.float64()),
    ("batch_compression_ratio", pa.float64()), ("batch_real_share", pa.float64()),
    ("batch_embedding_diversity", pa.float64()), ("batch_drift_vs_previous", pa.float64()),
    ("batch_judge_agreement", pa.float64()),  # Krippendorff's alpha of a judge panel (null: one judge)
    # tails vs quality.reference (null without one): quality/tails.py
    ("batch_rare_word_share", pa.float64()), ("batch_vocab_coverage", pa.float64()),
    ("batch_reference_coverage", pa.float64()),
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
