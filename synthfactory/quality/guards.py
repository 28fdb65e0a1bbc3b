"""The per-batch guards, built once per run: screen generated rows, measure accepted batches.

`screen` runs before the judge (no engine time is spent on rows that cannot be published):
heuristic filters, decontamination, exact and near dedup within the batch and against every
published version. `measure` runs on accepted rows: it mixes in real rows for the recipe's
real-data share and adds the batch metrics as columns, so the GX suite can gate on them
(declared in `BATCH_METRICS`, which the measure stage adds to every row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synthfactory.inputs.readers import read_texts
from synthfactory.inputs.seeds import SeedSet
from synthfactory.methods import Method, method_for
from synthfactory.model.columns import UndeclaredColumnError
from synthfactory.model.rows import real_row
from synthfactory.quality import text as tq
from synthfactory.quality.decontam import Decontaminator
from synthfactory.quality.dedup import NearDupIndex
from synthfactory.quality.screens import Screen
from synthfactory.recipe import LoadedRecipe
from synthfactory.recipe.schema import QualityConfig, RealDataConfig
from synthfactory.registry import SCREENS
from synthfactory.storage import Location

# what `batch_metrics` computes, as the columns the measure stage adds to every row of a batch;
# tails vs quality.reference are null without one (quality/tails.py)
BATCH_METRICS: tuple[pa.Field, ...] = tuple(pa.field(name, pa.float64()) for name in (
    "batch_near_dup_rate", "batch_distinct_1", "batch_distinct_2", "batch_compression_ratio", "batch_real_share",
    "batch_embedding_diversity", "batch_drift_vs_previous",
    "batch_rare_word_share", "batch_vocab_coverage", "batch_reference_coverage"))


@dataclass
class QualityGuards:
    """Everything the guards need for one run, loaded once (index, benchmarks, model, real rows)."""

    quality: QualityConfig  # the recipe's `quality` section
    real: RealDataConfig | None  # the recipe's `seeds.real`: real rows mixed in, or None
    method: Method
    index: NearDupIndex
    decontaminator: Decontaminator | None
    screens: list[Screen] = field(default_factory=list)  # the registered screens, in order
    real_texts: list[str] = field(default_factory=list)
    reference_texts: list[str] = field(default_factory=list)
    embeddings_folder: Location | Path | None = None  # the dataset's, on its store
    _embedder: Any = None
    _previous: Any = None  # embeddings of the previous version, loaded once
    _tails: Any = None

    @classmethod
    def for_run(cls, loaded: LoadedRecipe, index_folder: Location | Path,
                embeddings_folder: Location | Path | None = None) -> QualityGuards:
        q = loaded.recipe.quality
        index = NearDupIndex.load(index_folder, q.dedup.threshold, q.dedup.num_perm, q.dedup.bands)
        benches = [(b.name, loaded.files[f"benchmark:{b.name}"]) for b in q.decontamination.benchmarks]
        decon = Decontaminator(benches, q.decontamination.ngram) if benches and q.enabled else None
        real = loaded.recipe.seeds.real
        real_texts = read_texts(loaded.files["real"], real.field, "seeds.real.path") if real else []
        reference = (read_texts(loaded.files["reference"], "text", "quality.reference")
                     if "reference" in loaded.files else [])
        method = method_for(loaded.recipe)
        guards = cls(quality=q, real=real, method=method, index=index, decontaminator=decon,
                     screens=build_screens(q.filters, method),
                     real_texts=real_texts, reference_texts=reference, embeddings_folder=embeddings_folder)
        if reference:
            from synthfactory.quality.tails import ReferenceTails

            def encode(ids: list[str], texts: list[str]):  # the embedder loads on first use, not here
                return guards.embedder.encode(ids, texts)

            guards._tails = ReferenceTails(reference, encode if q.enabled and q.embeddings else None)
        return guards

    def previous_embeddings(self, version: int):
        """Embeddings of the version before `version` (written at its publish), or None."""
        if self._previous is None and self.embeddings_folder is not None:
            from synthfactory.quality.embed import read_version_embeddings

            self._previous = read_version_embeddings(self.embeddings_folder, version - 1)
        return self._previous

    def flag_recycled(self, seeds: SeedSet) -> SeedSet:
        """Seeds the recipe calls real that near-match published synthetic rows: flagged, with the
        matched row's depth, so provenance stays honest."""
        if not (self.quality.enabled and self.index.versions and seeds.rows):
            return seeds
        texts = [" ".join(str(v) for v in s.fields.values()) for s in seeds.rows]
        hits = self.index.screen(texts, [s.seed_id for s in seeds.rows], [0] * len(texts), keep=False)
        rows = [replace(s, source="synthetic", generation_depth=h[2], recycled=True) if h and h[2] > 0 else s
                for s, h in zip(seeds.rows, hits, strict=True)]  # depth 0 rows are real: matching them is no recycling
        return SeedSet(rows=rows, quarantined=seeds.quarantined, versions=seeds.versions)

    def contaminated_by(self, text: str) -> str | None:
        """The benchmark `text` shares an n-gram with (decontamination), or None."""
        return self.decontaminator.check(text) if self.decontaminator is not None else None

    @property
    def tails(self):
        """Rare words, vocabulary and embedding regions of the reference set (None without one);
        built in `for_run`, before the batches' threads share it (it embeds on first use, locked)."""
        return self._tails

    @property
    def embedder(self):
        if self._embedder is None:
            from synthfactory.quality.embed import Embedder

            self._embedder = Embedder()
        return self._embedder

    def content(self, row: dict[str, Any]) -> str:
        """The text of a row that dedup, decontamination and diversity read: all of it (every
        turn of a dialogue, both sides of a pair), as the method says; a real row's text."""
        return row["text"] if row["source"] == "real" else self.method.content(row)

    # -- before the judge ------------------------------------------------------------------
    def screen(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
        """(kept rows with quality columns, [(row, reason)]); dedup within batch and vs published."""
        q = self.quality
        kept, dropped = [], []
        for row in rows:
            tokens = tq.words(row["text"])
            row = dict(row)
            for check in self.screens:
                row.update(measured(check, row, tokens, q.enabled))
            reason = self.method.screen(row)  # the method's own (role order, early end, ...), always on
            if reason is None and q.enabled:  # the first registered screen the row fails names the reason
                reason = next((r for check in self.screens if (r := check.reason(row, tokens))), None)
            if reason is None and self.decontaminator is not None:
                bench = self.decontaminator.check(self.content(row))
                reason = f"contaminated:{bench}" if bench else None
            (dropped.append((row, reason)) if reason else kept.append(row))
        if q.enabled and q.dedup.enabled and kept:
            local = self.index.fork()  # this batch + published versions; the run is deduped at publish
            hits = local.screen([self.content(r) for r in kept], [r["id"] for r in kept],
                                [r["generation_depth"] for r in kept])
            dropped += [(r, f"{h[0]}: of {h[1]}") for r, h in zip(kept, hits, strict=True) if h]
            kept = [r for r, h in zip(kept, hits, strict=True) if not h]
        return kept, dropped

    # -- after the judge and the threshold ---------------------------------------------------
    def real_rows(self, template: dict[str, Any], count: int, start: int) -> list[dict[str, Any]]:
        """`count` real rows from the recipe's real source, lineage marked source=real, depth 0."""
        if not self.real_texts or count <= 0:
            return []
        return [real_row(template, self.real_texts[(start + k) % len(self.real_texts)]) for k in range(count)]

    def real_count(self, synthetic: int) -> int:
        real = self.real
        if real is None or synthetic == 0:
            return 0
        return math.ceil(real.share / (1.0 - real.share) * synthetic)

    def batch_metrics(self, rows: list[dict[str, Any]], generated: int, near_dups: int,
                      version: int) -> dict[str, float | None]:
        texts = [self.content(r) for r in rows]
        metrics: dict[str, float | None] = {
            "batch_near_dup_rate": near_dups / generated if generated else 0.0,
            "batch_distinct_1": tq.distinct_n(texts, 1), "batch_distinct_2": tq.distinct_n(texts, 2),
            "batch_compression_ratio": tq.compression_ratio(texts),
            "batch_real_share": sum(r["source"] == "real" for r in rows) / len(rows) if rows else 0.0,
            "batch_embedding_diversity": None, "batch_drift_vs_previous": None,
            "batch_rare_word_share": None, "batch_vocab_coverage": None, "batch_reference_coverage": None,
        }
        tails = self.tails
        is_generated = [r["source"] != "real" for r in rows]  # tails are the generator's: real rows would prop them up
        if tails is not None:
            written = [t for t, g in zip(texts, is_generated, strict=True) if g]
            metrics["batch_rare_word_share"] = tails.rare_word_share(written)
            metrics["batch_vocab_coverage"] = tails.vocab_coverage(written)
        if self.quality.enabled and self.quality.embeddings and len(rows) > 1:
            from synthfactory.quality.embed import frechet_distance, mean_pairwise_cosine_distance

            vectors = self.embedder.encode([r["id"] for r in rows], texts)
            metrics["batch_embedding_diversity"] = mean_pairwise_cosine_distance(vectors)
            previous = self.previous_embeddings(version)
            if previous is not None:
                metrics["batch_drift_vs_previous"] = frechet_distance(vectors, previous)
            if tails is not None:
                metrics["batch_reference_coverage"] = tails.reference_coverage(vectors[np.array(is_generated, bool)])
        return {k: (round(v, 6) if v is not None else None) for k, v in metrics.items()}


def measured(check: Screen, row: dict[str, Any], tokens: list[str], enabled: bool) -> dict[str, Any]:
    """What `check.measure` adds to the row; a key it does not declare in its `columns` is its bug
    (the published table would not have it): an UndeclaredColumnError naming both."""
    values = check.measure(row, tokens, enabled)
    undeclared = sorted(set(values) - {f.name for f in check.columns})
    if undeclared:
        raise UndeclaredColumnError(f"screen {type(check).__name__}: measure adds {', '.join(map(repr, undeclared))}, "
                                    f"which its `columns` do not declare")
    return values


def build_screens(filters: dict[str, Any], method: Method) -> list[Screen]:
    """Every registered screen, in registry order, with its own keys of `quality.filters`."""
    screens = []
    for name in SCREENS:
        cls = SCREENS.load(name)
        mine = {k: v for k, v in filters.items() if k in cls.Options.model_fields}
        screens.append(cls(cls.Options.model_validate(mine), method))
    return screens
