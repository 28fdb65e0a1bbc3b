"""The labelled rows a judge is measured on, from a file or from a dataset's `_labels/` table.

`calibrate --labels X` takes a JSONL/Parquet file (rows with `prompt`, `text`, `label` and an
optional `origin`) or a dataset folder STORE/NAME whose `_labels/` Delta table `synthfactory label`
writes. Every row has an origin, because a judge measured on rows built by corruption says little
about the rows a model makes: `real` (a model's outputs, labelled by a person or an agent against a
rubric; every row of a labels table), `constructed` (built by corruption) or `unknown` (a file row without `origin`).

From a table: "skip" labels are dropped and counted; a row labelled by several people takes the
latest label, and Cohen's kappa between each pair of labellers on the rows they share is reported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from synthfactory.errors import UserError
from synthfactory.grading.measures import cohen_kappa
from synthfactory.inputs.readers import PAYLOAD_CHARS, QuarantinedRow, read_records
from synthfactory.model.lineage import stable_hash
from synthfactory.recipe import file_fingerprint
from synthfactory.storage import Location, is_remote

GOOD = {"good", "1", "true", "yes", "pass", "accept"}
BAD = {"bad", "0", "false", "no", "fail", "reject"}
ORIGINS = ("real", "constructed", "unknown")
LABELS_DIR = "_labels"
LABEL_MAX_CHARS = 100_000  # a labelled row longer than this is a corrupt line, not a response


@dataclass
class LabelSet:
    """The labelled rows a judge is measured on, and the lines that could not be one (row data:
    quarantined with reason and location, counted in the report, never dropped silently).
    `source` says where they came from (the report's `labels` section)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


def _origin(value: Any) -> str | None:
    """A file row's `origin`: real, constructed, or unknown when absent; None when unreadable."""
    if value in (None, ""):
        return "unknown"
    text = str(value).strip().lower()
    return text if text in ORIGINS else None


def _label_row(fields: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The row a labelled record makes, or why it cannot make one."""
    missing = [k for k in ("prompt", "text", "label") if fields.get(k) in (None, "")]
    if missing:
        return None, f"missing {', '.join(missing)}"
    wrong = [k for k in ("prompt", "text") if not isinstance(fields[k], str)]
    if wrong:
        return None, f"wrong_type: {', '.join(wrong)} must be text"
    label = str(fields["label"]).strip().lower()
    if label not in GOOD | BAD:
        return None, f"bad_label: {fields['label']!r} is neither good nor bad"
    origin = _origin(fields.get("origin"))
    if origin is None:
        return None, f"bad_origin: {fields['origin']!r} is not one of {', '.join(ORIGINS)}"
    return {"id": str(fields.get("id") or stable_hash(fields["prompt"], fields["text"])),
            "prompt": fields["prompt"], "text": fields["text"], "good": label in GOOD,
            "kind": str(fields.get("kind") or ("good" if label in GOOD else "bad")),
            "source": fields["source"] if isinstance(fields.get("source"), str) else None,
            "origin": origin,
            "labeller": None if fields.get("labeller") in (None, "") else str(fields["labeller"])}, None


def _check_usable(rows: list[dict[str, Any]], quarantined: list[QuarantinedRow], where: str) -> None:
    if not rows:
        first = f"; first: {quarantined[0].location}: {quarantined[0].reason}" if quarantined else ""
        raise UserError(f"{where}: no usable labelled rows ({len(quarantined)} quarantined{first})")
    if all(r["good"] for r in rows) or not any(r["good"] for r in rows):
        raise UserError(f"{where}: needs both good and bad rows to measure a judge")


def load_labels(path: str | Path) -> LabelSet:
    """Rows with `prompt`, `text` and `label` (good/bad, 1/0, true/false), from JSONL or Parquet;
    `kind` (what makes a bad row bad), `origin`, `id` and `labeller` (whose label it is) are kept when
    present. A bad line (broken JSON, invalid UTF-8, empty, too long, missing or wrong fields) is
    quarantined with its reason and file:line; a file with no usable rows, or only one kind of label,
    is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels: no such file: {path}")
    fmt = "parquet" if path.suffix == ".parquet" else "jsonl"
    rows: list[dict[str, Any]] = []
    quarantined: list[QuarantinedRow] = []
    for record in read_records(path, fmt, max_chars=LABEL_MAX_CHARS, what="--labels", limit="the labels limit"):
        row, reason = _label_row(record.fields) if record.reason is None and record.fields else (None, record.reason)
        if row is None:
            quarantined.append(QuarantinedRow("labels", reason or "empty", record.raw[:PAYLOAD_CHARS],
                                              record.location))
        else:
            rows.append(row)
    _check_usable(rows, quarantined, str(path))
    return LabelSet(rows, quarantined, {"kind": "file", "file": path.name, "sha256": file_fingerprint(path)[:16]})


# -- a dataset's labels table ------------------------------------------------------------------
def _read_table(dataset: str) -> list[dict[str, Any]]:
    """The latest label per (row_id, labeller), through the labels room when it is there (the
    shared contract of `_labels/`), else straight from the Delta table by the same rule."""
    try:
        from synthfactory.labels.table import read_labels
    except ImportError:
        pass
    else:
        return list(read_labels(dataset))
    from deltalake import DeltaTable

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in DeltaTable(f"{dataset}/{LABELS_DIR}").to_pyarrow_table().to_pylist():
        key = (row["row_id"], row["labeller"])
        if key not in latest or row["labelled_at"] >= latest[key]["labelled_at"]:
            latest[key] = row
    return list(latest.values())


def labeller_agreement(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cohen's kappa of each pair of labellers on the rows both labelled good or bad."""
    by_labeller: dict[str, dict[str, bool]] = {}
    for label in labels:
        by_labeller.setdefault(label["labeller"], {})[label["row_id"]] = label["label"] == "good"
    pairs = []
    for a, b in combinations(sorted(by_labeller), 2):
        shared = sorted(set(by_labeller[a]) & set(by_labeller[b]))
        if shared:
            x, y = [by_labeller[a][r] for r in shared], [by_labeller[b][r] for r in shared]
            pairs.append({"labellers": [a, b], "rows": len(shared), "kappa": cohen_kappa(x, y),
                          "disagreements": sum(p != q for p, q in zip(x, y, strict=True))})
    return pairs


def load_label_table(dataset: str | Path) -> LabelSet:
    """The labelled rows of a dataset's `_labels/` table, all of origin `real` unless the table says
    otherwise: skips dropped and counted, one row per labelled row (its latest label)."""
    dataset = str(dataset).rstrip("/") if is_remote(dataset) else str(Path(str(dataset).removeprefix("file://")))
    labels = _read_table(dataset)
    given = [r for r in labels if r.get("label") in ("good", "bad")]
    quarantined = [QuarantinedRow("labels", f"bad_label: {r.get('label')!r} is neither good, bad nor skip",
                                  json.dumps(r, default=str)[:PAYLOAD_CHARS], f"{LABELS_DIR}:{r.get('row_id')}")
                   for r in labels if r.get("label") not in ("good", "bad", "skip")]
    latest: dict[str, dict[str, Any]] = {}
    for label in sorted(given, key=lambda r: (str(r["labelled_at"]), r["labeller"])):
        latest[label["row_id"]] = label  # the last one given wins
    rows = []
    for row_id in sorted(latest):
        label = latest[row_id]
        if str(label.get("text", "")).startswith("{"):
            try:
                pair = json.loads(label["text"])
            except ValueError:
                pair = None
            if isinstance(pair, dict) and {"chosen", "rejected"} <= set(pair):
                quarantined.append(QuarantinedRow(
                    "labels", "preference_pair: the judges grade one response, not a chosen/rejected pair",
                    label["text"][:PAYLOAD_CHARS], f"{LABELS_DIR}:{row_id}"))
                continue
        rows.append({"id": row_id, "prompt": label["prompt"], "text": label["text"],
                     "good": label["label"] == "good", "kind": label["label"], "source": None,
                     "origin": label.get("source") if label.get("source") in ORIGINS else "real",
                     "labeller": label["labeller"], "version": label.get("version")})
    _check_usable(rows, quarantined, f"{dataset}/{LABELS_DIR}")
    digest = hashlib.sha256("\n".join(f"{r['id']}\t{r['good']}\t{r['origin']}" for r in rows).encode()).hexdigest()
    labellers: dict[str, int] = {}
    for label in given:
        labellers[label["labeller"]] = labellers.get(label["labeller"], 0) + 1
    return LabelSet(rows, quarantined, {
        "kind": "table", "file": f"{dataset.rsplit('/', 1)[-1]}/{LABELS_DIR}", "dataset": dataset,
        "sha256": digest[:16],
        "skipped": sum(r.get("label") == "skip" for r in labels), "labellers": labellers,
        "agreement": labeller_agreement(given)})


def load_label_source(spec: str | Path) -> LabelSet:
    """`--labels X`: a file, or a dataset folder with a `_labels/` table, by what exists on disk."""
    if is_remote(spec):  # an object store holds dataset tables, not label files
        if Location.of(spec).child(LABELS_DIR, "_delta_log").isdir():
            return load_label_table(spec)
        raise UserError(f"--labels {spec}: no labels table ({LABELS_DIR}/) in this dataset: label rows first "
                        f"with `synthfactory label {spec}`")
    path = Path(str(spec).removeprefix("file://"))
    if path.is_file():
        return load_labels(path)
    if (path / LABELS_DIR / "_delta_log").is_dir():
        return load_label_table(path)
    if path.is_dir():
        raise UserError(f"--labels {spec}: a folder without a labels table ({LABELS_DIR}/): label rows first "
                        f"with `synthfactory label {spec}`, or pass a JSONL/Parquet file")
    raise UserError(f"--labels {spec}: neither a JSONL/Parquet file nor a dataset STORE/NAME with labels")
