"""The rows a person labels: a version's published rows and its run's quarantined rows, stratified
over the judge score so that calibration sees both sides of the threshold.

Deterministic for a dataset, version and labeller: every row gets a hash key, each stratum (ten
equal-count score bins, plus one for rows with no score) lists its rows in key order, and the
sample takes rows from the strata in turn. A larger `--rows` keeps the smaller sample and adds to
it; rows the labeller already labelled are not served again (resume where they left off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from synthfactory.errors import UserError
from synthfactory.model.lineage import stable_hash
from synthfactory.model.metadata import VersionMetadata
from synthfactory.store import DatasetStore

SCORE_BINS = 10
CHAT_METHODS = ("conversation",)
INSTRUCT_METHODS = ("instruct", "evol")


@dataclass
class LabelItem:
    """One row to label: what the page shows (`display`), what the labels table stores, and the
    judge's score and outcome, which the page shows only once the row is labelled."""

    row_id: str
    version: int
    table: str  # "published" | "quarantine"
    method: str
    prompt: str  # the rendered prompt, or the messages as JSON for chat methods
    text: str  # the response; preference rows: JSON {"chosen", "rejected"}
    score: float | None
    outcome: str  # "published", or the quarantine status and reason
    display: dict[str, Any] = field(default_factory=dict)

    def shown(self) -> dict[str, Any]:
        """What the page may see before the label: no score, no outcome (they would anchor the person)."""
        return {"row_id": self.row_id, "method": self.method, "display": self.display}

    def label_record(self, label: str, note: str | None, labeller: str) -> dict[str, Any]:
        """The labels-table row for this item (`synthfactory.labels.table`)."""
        return {"row_id": self.row_id, "version": self.version, "table": self.table, "method": self.method,
                "prompt": self.prompt, "text": self.text, "score": self.score, "label": label, "note": note,
                "labeller": labeller, "source": "real"}


@dataclass
class Sample:
    """A labeller's sample of one version, and how much of it they have labelled."""

    dataset: str
    version: int
    labeller: str
    metadata: VersionMetadata
    items: list[LabelItem]  # the whole sample, in serving order
    labelled: set[str]  # row ids of the sample this labeller already labelled

    @property
    def remaining(self) -> list[LabelItem]:
        return [item for item in self.items if item.row_id not in self.labelled]

    @property
    def rubric(self) -> list[dict[str, str]]:
        return rubric_of(self.metadata)

    @property
    def threshold(self) -> float | None:
        grading = self.metadata.recipe.get("grading") or {}
        value = grading.get("threshold")
        return float(value) if isinstance(value, (int, float)) else None


def rubric_of(metadata: VersionMetadata) -> list[dict[str, str]]:
    """The recipe's rubric as the version recorded it (grading.rubric, else each LLM judge's own);
    [] when the version did not record its recipe."""
    grading = metadata.recipe.get("grading") or {}
    criteria = list(grading.get("rubric") or [])
    for judge in grading.get("judges") or []:
        for criterion in (judge or {}).get("rubric") or []:
            if criterion not in criteria:
                criteria.append(criterion)
    return [{"name": str(c.get("name", "")), "description": str(c.get("description", ""))}
            for c in criteria if isinstance(c, dict)]


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [{"role": str(m.get("role", "")), "content": str(m.get("content") or "")}
            for m in value if isinstance(m, dict)]


def _answer(messages: list[dict[str, str]]) -> str:
    """The last assistant turn of a chosen/rejected conversation."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")


def describe_row(row: dict[str, Any], method: str) -> tuple[str, str, dict[str, Any]]:
    """(prompt, text, display) of a row, by method: the turns of chat rows, chosen and rejected of
    preference rows, the fields of structured rows, the prompt and response otherwise."""
    prompt, text = str(row.get("prompt") or ""), str(row.get("text") or "")
    if method == "preference" and (row.get("chosen") or row.get("rejected")):
        chosen, rejected = _answer(_messages(row.get("chosen"))), _answer(_messages(row.get("rejected")))
        return prompt, json.dumps({"chosen": chosen, "rejected": rejected}, ensure_ascii=False), {
            "kind": "preference", "prompt": prompt, "chosen": chosen, "rejected": rejected}
    if method in CHAT_METHODS and row.get("messages"):
        turns = _messages(row.get("messages"))
        return json.dumps(turns, ensure_ascii=False), text, {"kind": "chat", "turns": turns}
    if method == "structured" and row.get("json"):
        try:
            fields = json.loads(row["json"])
        except (TypeError, ValueError):
            fields = None
        if isinstance(fields, dict):
            shown = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in fields.items()}
            return prompt, text, {"kind": "fields", "prompt": prompt, "fields": shown}
    if method in INSTRUCT_METHODS and row.get("instruction") is not None:
        instruction = str(row.get("instruction") or "")
        return prompt, text, {"kind": "text", "prompt": instruction, "response": str(row.get("response") or text)}
    return prompt, text, {"kind": "text", "prompt": prompt, "response": text}


def _score(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _judged_pair(metadata: VersionMetadata) -> Any:
    """(row, prompt, text) -> the (instruction, response) the run's judges graded for the row
    (`Method.judge_items`): what a label is later measured against (`calibrate`, a learned
    judge's training) must be what the gate saw, not the request that made the row. Rows the
    judges grade as several items (preference candidates) keep the pair `describe_row` gives."""
    try:
        from synthfactory.methods import method_for
        from synthfactory.recipe import GenerationConfig

        method = method_for(GenerationConfig.model_validate((metadata.recipe or {}).get("generation") or {}))
    except (ValueError, TypeError, KeyError, UserError):  # a version that did not record a loadable recipe
        method = None

    def judged(row: dict[str, Any], prompt: str, text: str) -> tuple[str, str]:
        if method is None:
            return prompt, text
        try:
            items = method.judge_items(row)
        except (KeyError, TypeError, IndexError):
            return prompt, text
        return (str(items[0][0]), str(items[0][1])) if len(items) == 1 else (prompt, text)

    return judged


def candidates(store: DatasetStore, version: int, metadata: VersionMetadata) -> list[LabelItem]:
    """Every row of `version` a person could label: the rows it published and the rows its run
    quarantined or rejected (not quarantined seeds, nor real rows mixed in: no model made those)."""
    method = metadata.method or "text"
    judged = _judged_pair(metadata)
    items: dict[str, LabelItem] = {}
    for row in store.rows_added_by(version).to_pylist():
        if row.get("source") == "real":
            continue
        prompt, text, display = describe_row(row, method)
        prompt, text = judged(row, prompt, text)
        items[row["id"]] = LabelItem(row["id"], version, "published", method, prompt, text,
                                     _score(row.get("score")), "published", display)
    quarantine = store.read_quarantine()
    for record in quarantine.to_pylist():
        if record.get("version") != version or (metadata.run_id and record.get("run_id") != metadata.run_id):
            continue
        try:
            row = json.loads(record.get("row") or "")
        except ValueError:
            continue  # a seed line kept as it was read: not an output
        if not isinstance(row, dict) or "text" not in row or not row.get("id") or row.get("source") == "real":
            continue
        if row["id"] in items:
            continue
        prompt, text, display = describe_row(row, method)
        prompt, text = judged(row, prompt, text)
        outcome = f"{record.get('status') or 'quarantined'}: {record.get('reason') or 'no reason recorded'}"
        items[row["id"]] = LabelItem(row["id"], version, "quarantine", method, prompt, text,
                                     _score(row.get("score")), outcome, display)
    return list(items.values())


def strata(items: list[LabelItem], bins: int = SCORE_BINS) -> list[list[LabelItem]]:
    """Equal-count score bins (lowest first) plus one stratum of rows without a score."""
    scored = sorted((i for i in items if i.score is not None), key=lambda i: (i.score, i.row_id))
    unscored = [i for i in items if i.score is None]
    count = min(bins, len(scored))
    groups = [scored[k * len(scored) // count:(k + 1) * len(scored) // count] for k in range(count)]
    return [g for g in [*groups, unscored] if g]


def stratified(items: list[LabelItem], rows: int, key: str) -> list[LabelItem]:
    """`rows` items taken from the strata in turn (lowest, highest, second lowest, ... then the rows
    without a score, so even a small sample sees both ends of the range), each stratum in hash
    order; served in hash order too, so the order does not give the scores away."""
    def order(item: LabelItem) -> str:
        return stable_hash(key, item.row_id)

    groups = strata(items)
    scored = [g for g in groups if g[0].score is not None]
    ends = [scored[k // 2] if k % 2 == 0 else scored[-1 - k // 2] for k in range(len(scored))]  # low, high, ...
    queues = [sorted(group, key=order) for group in ends + [g for g in groups if g[0].score is None]]
    picked: list[LabelItem] = []
    depth = 0
    while len(picked) < rows and any(depth < len(q) for q in queues):
        picked.extend(q[depth] for q in queues if depth < len(q) and len(picked) < rows)
        depth += 1
    return sorted(picked, key=order)


def draw_sample(store: DatasetStore, version: int | None, rows: int, labeller: str) -> Sample:
    """The labeller's sample of `version` (latest when None), with what they already labelled."""
    from synthfactory.labels.table import read_labels

    versions = store.versions()
    store.delta_version_of(version)  # one line naming the versions when `version` does not exist
    info = versions[-1] if version is None else next(v for v in versions if v.version == version)
    pool = candidates(store, info.version, info.metadata)
    key = f"{info.metadata.dataset or store.uri.rsplit('/', 1)[-1]}|{info.version}|{labeller}"
    items = stratified(pool, rows, key)
    ids = {item.row_id for item in items}
    done = {label["row_id"] for label in read_labels(store.uri)
            if label["labeller"] == labeller and label["version"] == info.version and label["row_id"] in ids}
    return Sample(info.metadata.dataset or store.uri, info.version, labeller, info.metadata, items, done)
