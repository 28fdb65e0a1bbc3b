"""The one reader of the files a user hands us, with one bad-line policy.

A line is bad when it is not UTF-8, empty, broken JSON, not a JSON object, or over the length
limit (a row of a Parquet file or saved dataset: when all its values are empty). What happens to a
bad line depends on what the file is, never on who reads it:

- ROW data (seeds, labels): the line is quarantined with its reason and location (file:line or
  file[index]) and counted; the rest of the file is used.
- REFERENCE data (benchmarks, real corpora, `quality.reference`): the run stops with a one-line
  RecipeError naming file and line. A half-read benchmark would weaken decontamination silently.

No line is ever dropped without a word.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthfactory.errors import RecipeError

# A reference line longer than this is a corrupt file (a whole JSON array on one line, a binary
# file), not one text: benchmark items and corpus paragraphs are a few thousand characters at most.
REFERENCE_MAX_CHARS = 200_000
PAYLOAD_CHARS = 10_000  # how much of a quarantined line is kept with it


@dataclass(frozen=True)
class QuarantinedRow:
    """A row we could not use, kept with why and where, so nothing is lost silently."""

    stage: str
    reason: str
    payload: str
    location: str


@dataclass(frozen=True)
class Record:
    """One line (or row) of a user file: its fields, or the reason it is bad."""

    path: Path
    at: str  # ":12" for line 12 of a text file, "[12]" for row 12 of a Parquet file or saved dataset
    fields: dict[str, Any] | None
    raw: str
    reason: str | None = None

    @property
    def location(self) -> str:
        """file:line with the file's name, as quarantine records show it."""
        return f"{self.path.name}{self.at}"

    def quarantined(self, stage: str) -> QuarantinedRow:
        return QuarantinedRow(stage, self.reason or "empty", self.raw[:PAYLOAD_CHARS], self.location)


def detect_format(path: Path, declared: str = "auto") -> str:
    """text | jsonl | parquet | hf (a folder saved with `datasets.save_to_disk`)."""
    if declared != "auto":
        return declared
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}.get(suffix, "text")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the file is not an empty row
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip(b"\r")


def _line_records(path: Path, fmt: str, text_field: str) -> Iterator[Record]:
    for number, raw in _lines(path):
        at = f":{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Record(path, at, None, raw.decode("utf-8", errors="replace"), f"invalid_utf8: byte {exc.start}")
            continue
        if not line.strip():
            yield Record(path, at, None, line, "empty")
            continue
        if fmt == "text":
            yield Record(path, at, {text_field: line.strip()}, line)
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Record(path, at, None, line, f"bad_json: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(value, dict):
            yield Record(path, at, None, line, f"bad_json: expected an object, got {type(value).__name__}")
            continue
        yield Record(path, at, value, line)


def _table_rows(path: Path, fmt: str, what: str) -> Any:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    import datasets

    try:
        rows = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise RecipeError(f"{what}: {path} is not a dataset saved with datasets.save_to_disk ({exc})") from None
    if isinstance(rows, datasets.DatasetDict):
        raise RecipeError(f"{what}: {path} holds several splits; point at one split's folder")
    return rows


def read_records(path: Path, fmt: str = "auto", text_field: str = "text", max_chars: int | None = None,
                 what: str = "seeds.path", limit: str = "max_chars") -> Iterator[Record]:
    """Every line (text, JSONL) or row (Parquet, saved dataset) of `path`, good or bad, in order.
    A text line becomes `{text_field: line}`; `max_chars` (named `limit` in reasons) bounds a
    line's (or row's JSON) length; `what` names the recipe field for errors about the whole file."""
    fmt = detect_format(path, fmt)
    if fmt in ("text", "jsonl"):
        records: Iterator[Record] = _line_records(path, fmt, text_field)
    else:
        records = _row_records(path, fmt, what)
    for record in records:
        if record.reason is None and max_chars is not None and len(record.raw) > max_chars:
            record = Record(path, record.at, None, record.raw,
                            f"too_long: {len(record.raw)} chars > {limit} {max_chars}")
        yield record


def _row_records(path: Path, fmt: str, what: str) -> Iterator[Record]:
    for index, row in enumerate(_table_rows(path, fmt, what)):
        raw = json.dumps(row, ensure_ascii=False, default=str)
        bad = all(v is None or (isinstance(v, str) and not v.strip()) for v in row.values())
        yield Record(path, f"[{index}]", None if bad else row, raw, "empty" if bad else None)


def read_rows(path: Path, stage: str, fmt: str = "auto", text_field: str = "text", max_chars: int | None = None,
              what: str = "seeds.path", limit: str = "max_chars") -> tuple[list[Record], list[QuarantinedRow]]:
    """ROW data: the good records, and every bad one quarantined under `stage` with its reason."""
    good: list[Record] = []
    bad: list[QuarantinedRow] = []
    for record in read_records(path, fmt, text_field, max_chars, what, limit):
        if record.reason is None and record.fields is not None:
            good.append(record)
        else:
            bad.append(record.quarantined(stage))
    return good, bad


def _text_of(record: Record, field: str | None, what: str) -> str | None:
    row = record.fields or {}
    if field is None:  # benchmarks: every value counts (question, answer, ...)
        return " ".join(str(v) for v in row.values() if v is not None)
    if field not in row:
        raise RecipeError(f"{what}: {record.path}: rows have no field {field!r} (fields: {sorted(row)})")
    return None if row[field] is None else str(row[field])


def read_texts(path: Path, field: str | None = None, what: str = "reference file") -> list[str]:
    """REFERENCE data: the texts of a text file (one per line), JSONL, Parquet file or saved
    dataset: `field` of each row, or all of a row's values joined when `field` is None. The first
    bad line stops the run: RecipeError naming `what` (the recipe field), the file and the line."""
    texts = []
    for record in read_records(path, "auto", field or "text", REFERENCE_MAX_CHARS, what, "the reference limit"):
        reason = record.reason
        if reason is None:
            text = _text_of(record, field, what)
            if text is not None and text.strip():
                texts.append(text)
                continue
            reason = f"empty: no text in {field!r}" if field else "empty: every value is empty"
        raise RecipeError(f"{what}: {path}{record.at}: {reason}; fix or remove this line "
                          "(a reference file is read whole or not at all)")
    return texts
