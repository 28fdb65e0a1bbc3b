"""Training layouts a published version can be exported in, as `datasets.load_dataset` loads them.

- `hub`: every column (lineage included), Parquet: what `load_dataset_version` returns.
- `jsonl`: the same rows as JSON lines.
- `messages`: one `messages` column, OpenAI chat format: TRL's SFTTrainer takes it as is.
- `sharegpt`: one `conversations` column of `{"from": human|gpt|system, "value"}` turns.
- `dpo`: `prompt`, `chosen`, `rejected` (conversational, as TRL's DPOTrainer reads them) plus
  `score_chosen`/`score_rejected`; only for `preference` datasets.

Conversions go by the columns a table has (`messages`, `chosen`/`rejected`, else `prompt`/`text`),
so every version of every method converts the same way.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from synthfactory.errors import UserError
from synthfactory.methods.base import MESSAGES
from synthfactory.model.metadata import VersionMetadata

FORMATS = ("hub", "jsonl", "messages", "sharegpt", "dpo")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
SHAREGPT = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))


def _messages_of(row: dict[str, Any], system: str | None) -> list[dict[str, str]]:
    """A row as one chat: its `messages`, or its prompt and text (with the recipe's system prompt)."""
    if row.get("messages"):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if row.get("source") == "real" or not row.get("prompt"):
        return []  # a real text mixed in has no prompt: it is not a chat
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["text"]}]


def convert(table: pa.Table, fmt: str, meta: VersionMetadata) -> pa.Table:
    """`table` (a version's rows) in the layout `fmt`; a layout the rows cannot take is a UserError."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt in ("hub", "jsonl"):
        return table
    method = meta.method
    pairs = "chosen" in table.column_names
    if fmt == "dpo":
        if not pairs:
            raise UserError(f"--format dpo needs preference pairs; this dataset's method is {method!r} "
                            "(use --format messages or sharegpt)")
        rows = [r for r in table.to_pylist() if r.get("chosen")]
        return pa.table({
            "prompt": pa.array([r["chosen"][:-1] for r in rows], MESSAGES),
            "chosen": pa.array([r["chosen"][-1:] for r in rows], MESSAGES),
            "rejected": pa.array([r["rejected"][-1:] for r in rows], MESSAGES),
            "score_chosen": pa.array([r["score_chosen"] for r in rows], pa.float64()),
            "score_rejected": pa.array([r["score_rejected"] for r in rows], pa.float64()),
        })
    if pairs:
        raise UserError(f"--format {fmt}: a preference dataset is pairs, not chats; use --format dpo")
    system = (meta.recipe.get("generation") or {}).get("system_prompt")
    chats = [c for c in (_messages_of(r, system) for r in table.to_pylist()) if c]
    if fmt == "messages":
        return pa.table({"messages": pa.array(chats, MESSAGES)})
    return pa.table({"conversations": pa.array(
        [[{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in chat] for chat in chats], SHAREGPT)})


def write_rows(table: pa.Table, fmt: str, folder: Any, key: str) -> str:
    """Write the converted rows under `folder/data/`; the path relative to `folder`.

    The file name carries `key` (run, version, format), and the card's `configs` name that file:
    `datasets` caches a local folder's data by folder name and config, not by content, so a
    re-export under the same name would otherwise load the rows of the export before it."""
    if fmt == "jsonl":
        path = f"data/train-{key}.jsonl"
        with open(folder / path, "w", encoding="utf-8") as handle:
            for row in table.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return path
    import pyarrow.parquet as pq

    path = f"data/train-{key}.parquet"
    pq.write_table(table, folder / path, compression="zstd")
    return path
