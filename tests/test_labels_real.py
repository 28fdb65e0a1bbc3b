"""The labelled set of real outputs (recipes/labels/quickstart_real_*.jsonl): new topics only, the
held-out split by the written rule, and files `calibrate` can read. Fast: reads files, no model."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from synthfactory.grading.calibration import load_labels

LABELS = Path(__file__).resolve().parent.parent / "recipes" / "labels"
sys.path.insert(0, str(LABELS))
import make_real  # noqa: E402


def test_topics_are_new_and_spread_over_the_nine_domains() -> None:
    topics = make_real.read_topics()
    assert len(topics) == 360
    assert set(Counter(t["domain"] for t in topics).values()) == {40}
    seen = {line.strip().casefold() for line in (LABELS.parent / "seeds" / "topics.txt").read_text().splitlines()}
    seen |= {row["topic"].casefold() for row in yaml.safe_load((LABELS / "quickstart_good.yaml").read_text())}
    assert not [t["topic"] for t in topics if t["topic"].casefold() in seen]
    assert len({t["topic"].casefold() for t in topics}) == 360


def test_every_third_topic_is_held_out() -> None:
    topics = make_real.read_topics()
    assert [t["split"] for t in topics[:4]] == ["test", "dev", "dev", "test"]
    assert Counter(t["split"] for t in topics) == {"test": 120, "dev": 240}


@pytest.mark.parametrize("split", ["dev", "test"])
def test_labelled_files_load_and_keep_their_split(split: str) -> None:
    path = LABELS / f"quickstart_real_{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    loaded = load_labels(path)
    assert len(loaded.rows) == len(rows) and not loaded.quarantined
    assert {r["origin"] for r in loaded.rows} == {"real"} and all(r["source"] is None for r in loaded.rows)
    split_of = {t["id"]: t["split"] for t in make_real.read_topics()}
    assert {split_of[r["id"]] for r in rows} == {split}
    assert all(r["origin"] == "real" and r["kind"] == f"real_{r['label']}" and r["labeller"] in ("A", "B")
               for r in rows)
    template = yaml.safe_load(make_real.RECIPE.read_text())["generation"]["prompt_template"]
    assert all(r["prompt"] == template.replace("{{ topic }}", r["topic"]) for r in rows)


def test_dev_and_test_are_disjoint_and_cover_the_outputs() -> None:
    dev = {json.loads(line)["id"] for line in (LABELS / "quickstart_real_dev.jsonl").read_text().splitlines()}
    test = {json.loads(line)["id"] for line in (LABELS / "quickstart_real_test.jsonl").read_text().splitlines()}
    assert not dev & test
    assert len(dev | test) >= 300  # every output of the 360 that has a good/bad label
