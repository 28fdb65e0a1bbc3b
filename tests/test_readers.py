"""The one reader of user files and its one bad-line policy: row data (seeds, labels) quarantines a
bad line with its reason and file:line; reference data (benchmarks, real corpora, quality.reference)
stops the run in one line naming the file and the line. No line is dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthfactory.errors import RecipeError
from synthfactory.inputs.readers import REFERENCE_MAX_CHARS, read_rows, read_texts
from synthfactory.quality.decontam import Decontaminator

GOOD = json.dumps({"text": "the tide comes in twice a day"}).encode()
BAD_LINES = {  # what a bad line holds -> the reason code both policies give for it
    "bad_json": b'{"text": "broken',
    "invalid_utf8": b"\xff\xfe not utf-8",
    "empty": b"   ",
    "too_long": json.dumps({"text": "x" * (REFERENCE_MAX_CHARS + 1)}).encode(),
}


def _jsonl(tmp_path: Path, *lines: bytes, name: str = "file.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_row_data_quarantines_a_bad_line_with_its_reason_and_location(tmp_path, kind):
    path = _jsonl(tmp_path, GOOD, BAD_LINES[kind], GOOD)
    good, bad = read_rows(path, "seeds", max_chars=REFERENCE_MAX_CHARS)
    assert [r.location for r in good] == ["file.jsonl:1", "file.jsonl:3"]
    assert [(q.stage, q.location, q.reason.split(":")[0]) for q in bad] == [("seeds", "file.jsonl:2", kind)]
    assert len(good) + len(bad) == 3  # every line is accounted for


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_reference_data_stops_at_a_bad_line_naming_file_and_line(tmp_path, kind):
    path = _jsonl(tmp_path, GOOD, GOOD, BAD_LINES[kind], GOOD)
    with pytest.raises(RecipeError) as caught:
        read_texts(path, "text", "quality.reference")
    message = str(caught.value)
    assert message.startswith(f"quality.reference: {path}:3: {kind}") and "\n" not in message


def test_a_benchmark_with_a_broken_line_stops_the_run_naming_the_benchmark_and_line(tmp_path):
    bench = _jsonl(tmp_path, json.dumps({"question": "q", "answer": "a"}).encode(), b'{"question": "cut',
                   name="gsm8k.jsonl")
    with pytest.raises(RecipeError, match=rf"^quality\.decontamination\.benchmarks\[gsm8k\]: {bench}:2: bad_json"):
        Decontaminator([("gsm8k", bench)])


def test_reference_text_and_parquet_files_read_whole_or_not_at_all(tmp_path):
    text = tmp_path / "real.txt"
    text.write_text("first paragraph\nsecond paragraph\n")
    assert read_texts(text) == ["first paragraph", "second paragraph"]
    text.write_text("first paragraph\n\nsecond paragraph\n")
    with pytest.raises(RecipeError, match=rf"{text}:2: empty"):
        read_texts(text)
    table = tmp_path / "real.parquet"
    pq.write_table(pa.table({"text": ["one", "two"], "url": ["a", None]}), table)
    assert read_texts(table, "text") == ["one", "two"]
    pq.write_table(pa.table({"text": ["one", None], "url": ["a", "b"]}), table)
    with pytest.raises(RecipeError, match=r"real\.parquet\[1\]: empty: no text in 'text'"):
        read_texts(table, "text")
    objects = _jsonl(tmp_path, GOOD, b'"a string, not an object"')
    with pytest.raises(RecipeError, match=r"file\.jsonl:2: bad_json: expected an object, got str"):
        read_texts(objects, "text")
