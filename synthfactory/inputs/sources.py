"""Reading texts from the files a recipe names (real data, reference sets, benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthfactory.errors import RecipeError


def _text_of(row: Any, field: str | None, path: Path) -> str | None:
    if not isinstance(row, dict):
        return str(row)
    if field is None:  # benchmarks: every value counts (question, answer, ...)
        return " ".join(str(v) for v in row.values() if v is not None)
    if field not in row:
        raise RecipeError(f"{path}: rows have no field {field!r} (fields: {sorted(row)})")
    return None if row[field] is None else str(row[field])


def read_texts(path: Path, field: str | None = None) -> list[str]:
    """Non-empty texts of a text file (one per line), JSONL or Parquet file: `field` of each row,
    or all of a row's values joined when `field` is None. Unparseable JSONL lines are skipped."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows: list[Any] = pq.read_table(path).to_pylist()
    else:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        if path.suffix not in (".jsonl", ".ndjson"):
            return lines
        rows = []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    texts = (_text_of(row, field, path) for row in rows)
    return [t for t in texts if t and t.strip()]
