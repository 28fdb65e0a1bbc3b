"""The labels table: `{dataset}/_labels/`, a Delta table of labels people gave rows, append-only.

One row per label given (a person who changes their mind appends another); readers take the
latest per (row_id, labeller). It is a table of its own beside the dataset (directories starting
with `_` are ignored by the dataset's Delta readers), so labelling never makes a dataset version.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthfactory.storage import Location, storage_options

LABELS_DIR = "_labels"
LABELS_LOCK = "_labels.lock"
LABEL_VALUES = ("good", "bad", "skip")
TABLE_VALUES = ("published", "quarantine")

LABELS_SCHEMA = pa.schema([
    ("row_id", pa.string()), ("version", pa.int64()), ("table", pa.string()), ("method", pa.string()),
    ("prompt", pa.string()), ("text", pa.string()), ("score", pa.float64()), ("label", pa.string()),
    ("note", pa.string()), ("labeller", pa.string()), ("labelled_at", pa.timestamp("us", tz="UTC")),
    ("source", pa.string()),
])
_REQUIRED = ("row_id", "version", "table", "method", "prompt", "text", "label", "labeller")


def labels_uri(dataset_uri: str | Path) -> str:
    """Where a dataset's labels live."""
    return f"{str(dataset_uri).rstrip('/')}/{LABELS_DIR}"


def _exists(uri: str) -> bool:
    return Location.of(uri).child("_delta_log").isdir()


def _delta_options(uri: str) -> dict[str, str] | None:
    """deltalake's storage_options for the store of `uri` (credentials from the environment)."""
    return storage_options(uri).delta or None


@contextmanager
def _append_lock(dataset_uri: str) -> Iterator[None]:
    """Serialise local appends (two label servers, or a server and an import) with an flock of
    its own, not the dataset's run lock: a person may label while a run of the dataset goes on."""
    folder = Location.of(dataset_uri).local_path
    if folder is None:
        yield  # object stores: Delta's own commit (conditional put) orders concurrent appends
        return
    path = folder / LABELS_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_label(label: dict[str, Any]) -> dict[str, Any]:
    """One label as the table stores it; ValueError naming the first field that is wrong."""
    missing = [key for key in _REQUIRED if label.get(key) in (None, "")]
    if missing:
        raise ValueError(f"label is missing {', '.join(missing)}")
    if label["label"] not in LABEL_VALUES:
        raise ValueError(f"label must be one of {'/'.join(LABEL_VALUES)}, not {label['label']!r}")
    if label["table"] not in TABLE_VALUES:
        raise ValueError(f"table must be one of {'/'.join(TABLE_VALUES)}, not {label['table']!r}")
    score = label.get("score")
    note = label.get("note")
    return {
        "row_id": str(label["row_id"]), "version": int(label["version"]), "table": label["table"],
        "method": str(label["method"]), "prompt": str(label["prompt"]), "text": str(label["text"]),
        "score": None if score is None else float(score), "label": label["label"],
        "note": None if note in (None, "") else str(note), "labeller": str(label["labeller"]),
        "labelled_at": label.get("labelled_at") or datetime.now(timezone.utc),
        "source": label.get("source") or "real",
    }


def append_labels(dataset_uri: str | Path, labels: list[dict[str, Any]]) -> int:
    """Append labels in one Delta commit (under a lock for local stores); returns how many."""
    from deltalake import write_deltalake

    if not labels:
        return 0
    rows = [check_label(label) for label in labels]
    uri = str(dataset_uri).rstrip("/")
    with _append_lock(uri):
        write_deltalake(labels_uri(uri), pa.Table.from_pylist(rows, schema=LABELS_SCHEMA), mode="append",
                        storage_options=_delta_options(uri))
    return len(rows)


def read_all_labels(dataset_uri: str | Path) -> list[dict[str, Any]]:
    """Every label ever given, in the order they were appended (oldest first)."""
    from deltalake import DeltaTable

    uri = labels_uri(dataset_uri)
    if not _exists(uri):
        return []
    rows = DeltaTable(uri, storage_options=_delta_options(uri)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: r["labelled_at"])  # stable: equal times keep scan order


def read_labels(dataset_uri: str | Path) -> list[dict[str, Any]]:
    """The latest label per (row_id, labeller); "skip" labels are returned (readers drop them)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_all_labels(dataset_uri):
        latest[(row["row_id"], row["labeller"])] = row
    return list(latest.values())
