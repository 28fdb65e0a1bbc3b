"""Probe wall time per 1,000 training tokens on this machine: one small probe of a tiny version.

Publishes one version of the labelled set's good answers (recipes/labels/quickstart_real_dev.jsonl,
labelled by AI agents against the rubric) into a temporary store, converts the bundled
SmolLM2-135M-Instruct once (not timed: it is cached on disk), then runs one probe (LoRA on CPU,
batch 2) and prints its wall time (base and tuned evaluation included) and its training time,
each per 1,000 training tokens.

    .venv/bin/python bench/probe.py [--steps 10] [--real-items 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthfactory.model.lineage import ROW_SCHEMA, row_id_for
from synthfactory.model.metadata import VersionMetadata
from synthfactory.probe.evalsets import LABELS_DIR
from synthfactory.store import DatasetStore

SYSTEM = "You are a patient teacher who explains things clearly and accurately."


def publish_good_rows(folder: Path) -> DatasetStore:
    rows = [json.loads(x) for x in (LABELS_DIR / "quickstart_real_dev.jsonl").read_text().splitlines()]
    store = DatasetStore(folder / "quickstart")
    now = datetime.now(timezone.utc)
    store.publish([{"id": row_id_for(r["prompt"], r["text"]), "seed_id": r["id"], "source": "synthetic",
                    "generation_depth": 1, "prompt": r["prompt"], "text": r["text"], "run_id": "bench",
                    "batch_id": "b", "version": 1, "batch_index": 0, "created_at": now}
                   for r in rows if r["label"] == "good"],
                  VersionMetadata(version=1, run_id="bench", dataset="quickstart", method="text",
                                  generator_model="smollm2-135m-instruct",
                                  recipe={"name": "quickstart", "generation": {"system_prompt": SYSTEM}}), ROW_SCHEMA)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--real-items", type=int, default=8)
    args = parser.parse_args()
    from synthfactory.probe.model import load_base_model
    from synthfactory.probe.run import probe_version

    load_base_model("smollm2-135m-instruct")  # the one-time GGUF conversion and load, not timed
    with tempfile.TemporaryDirectory() as tmp:
        store = publish_good_rows(Path(tmp))
        started = time.monotonic()
        record = probe_version(store.uri, 1, steps=args.steps, seed=0, real_items=args.real_items, card=False)
        wall = time.monotonic() - started
    per_k = 1000 / record.tokens
    print(record.summary())
    print(f"probe wall time per 1,000 training tokens: {wall * per_k:.1f} s "
          f"(training alone {record.train_seconds * per_k:.1f} s); "
          f"{record.steps} steps, {record.tokens} tokens, batch {record.batch_size}, "
          f"{'LoRA' if record.lora else 'full'} on {record.device}, {os.cpu_count()} CPUs, "
          f"evaluation items {sum(e.items for e in record.evals)}")


if __name__ == "__main__":
    main()
