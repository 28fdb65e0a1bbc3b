"""A probe's record, stored beside the dataset: `{dataset}/_probes/v{N}/{fingerprint}.json`.

A Delta commit's metadata is fixed once the version is published, so probes (which run later,
maybe many times) are files of their own next to the table, through the storage layer (any store).
The fingerprint hashes what decides the numbers: base model, layout, budget, seed, trainer
settings, the evaluation sets and the task-accuracy cap; the same probe again overwrites its own record.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthfactory.model.lineage import stable_hash

PROBES_DIR = "_probes"
PROBE_SCHEMA = 2  # bump when what a probe measures changes (older records stay readable); 2: task accuracy


class EvalResult(BaseModel):
    """One evaluation set, base vs tuned: perplexities, the difference tuned - base and the relative
    change, each with a 95% paired-bootstrap interval over the set's items; or task accuracy
    (`metric` "accuracy": the share of items right, `right` the counts, the difference's interval)."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str = ""
    items: int = 0
    tokens: int = 0
    metric: str = "perplexity"
    base: float | None = None
    tuned: float | None = None
    delta: float | None = None
    delta_interval: list[float] | None = None
    relative: float | None = None
    relative_interval: list[float] | None = None
    right: list[int] | None = None  # task accuracy: [base, tuned] items answered right
    verifier_errors: list[int] | None = None  # task accuracy: [base, tuned] answers a verifier raised on (wrong)


class ProbeRecord(BaseModel):
    """What one probe of one version did and measured."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = PROBE_SCHEMA
    fingerprint: str
    dataset: str
    version: int
    base_model: str
    base_key: str
    layout: str  # sft | dpo
    rows: int  # training examples available in the layout
    steps_budget: int | None = None
    max_tokens: int | None = None
    seed: int = 0
    lora: bool = True
    device: str = "cpu"
    learning_rate: float | None = None
    batch_size: int = 2
    steps: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    evals: list[EvalResult] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)  # eval name -> why it did not run
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def eval(self, name: str) -> EvalResult | None:
        return next((e for e in self.evals if e.name == name), None)

    def summary(self) -> str:
        """One line: the budget spent and each measured change."""
        parts = [f"{e.name} {_change(e)}" for e in self.evals]
        return (f"{self.dataset} v{self.version}: probe {self.fingerprint} ({self.base_model}, "
                f"{'LoRA' if self.lora else 'full'}, {self.steps} steps, {self.tokens} tokens, "
                f"{self.wall_seconds:.0f}s): " + ("; ".join(parts) or "nothing measured"))


def _change(e: EvalResult) -> str:
    if e.base is None or e.tuned is None or e.delta is None:
        return "-"
    if e.metric == "accuracy":
        interval = e.delta_interval
        ci = f" [{interval[0] * 100:+.0f}, {interval[1] * 100:+.0f}]" if interval else ""
        return (f"accuracy {e.base:.0%} -> {e.tuned:.0%} ({e.delta * 100:+.0f} points{ci}, "
                f"{e.items} items)")
    interval = e.delta_interval
    ci = f" [{interval[0]:+.3g}, {interval[1]:+.3g}]" if interval else ""
    return f"{e.metric} {e.base:.4g} -> {e.tuned:.4g} ({e.delta:+.3g}{ci})"


def probe_fingerprint(base_key: str, layout: str, steps: int | None, max_tokens: int | None, seed: int, lora: bool,
                      learning_rate: float, batch_size: int, eval_keys: dict[str, str], task_items: int = 0) -> str:
    return stable_hash(PROBE_SCHEMA, base_key, layout, steps, max_tokens, seed, lora, learning_rate, batch_size,
                       eval_keys, task_items, length=12)


def _probe_folder(store: Any, version: int) -> Any:
    return store.root.child(PROBES_DIR, f"v{version}")


def write_probe(store: Any, record: ProbeRecord) -> Any:
    """Store `record` beside the dataset (atomic write through the storage layer); its Location."""
    place = _probe_folder(store, record.version).child(f"{record.fingerprint}.json")
    return place.write_text(json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True))


def read_probes(store: Any, version: int) -> list[ProbeRecord]:
    """Every probe recorded for `version`, oldest first (none: [])."""
    folder = _probe_folder(store, version)
    try:
        entries = [e for e in folder.ls() if e.name.endswith(".json")]
    except FileNotFoundError:
        return []
    records = [ProbeRecord.model_validate_json(e.read_text()) for e in entries]
    return sorted(records, key=lambda r: (r.created, r.fingerprint))
