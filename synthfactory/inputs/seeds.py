"""Seed loading: text, JSONL, Parquet or a saved `datasets` folder.

Seeds are row data for the one reader (inputs/readers.py): a broken row (bad JSON, invalid UTF-8,
empty, over the length limit) never stops the run: it is quarantined with a reason and counted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthfactory.errors import RecipeError, UserError
from synthfactory.inputs.readers import QuarantinedRow, read_rows
from synthfactory.model.lineage import stable_hash
from synthfactory.recipe import SeedsConfig


@dataclass(frozen=True)
class SeedRow:
    """A usable seed: its fields are the prompt template's variables."""

    seed_id: str
    fields: dict[str, Any]
    source: str = "real"
    generation_depth: int = 0
    recycled: bool = False  # claimed real, but near-matches a published synthetic row
    location: str = ""  # file:line or file[index], for quarantine records


@dataclass
class SeedSet:
    rows: list[SeedRow] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)  # the published versions these seeds came from


def versions_named(spec: str, published: list[int]) -> list[int]:
    """The published versions `@all`, `@latest`, `@N`, `@N..M` or `@N..latest` names (spec: the
    part after @), oldest first."""
    if not published:
        return []
    latest = max(published)
    if spec in ("all", "latest"):
        return sorted(published) if spec == "all" else [latest]
    first, _, last = spec.partition("..")
    low, high = int(first), (latest if last in ("", "latest") and ".." in spec else int(last or first))
    return [v for v in sorted(published) if low <= v <= high]


def _interleave(real: list[SeedRow], synthetic: list[SeedRow]) -> list[SeedRow]:
    """One list in which every prefix holds at least its share of real seeds (rounded up), so a
    run that uses only the first `batches.count x size` seeds still meets the real share."""
    share = len(real) / (len(real) + len(synthetic)) if real or synthetic else 0.0
    out, r, s = [], 0, 0
    for i in range(len(real) + len(synthetic)):
        take_real = r < len(real) and (r < math.ceil((i + 1) * share - 1e-9) or s >= len(synthetic))
        out.append(real[r] if take_real else synthetic[s])
        r, s = (r + 1, s) if take_real else (r, s + 1)
    return out


def load_versions_seeds(config: SeedsConfig, own: str | Path | None = None,
                        real_texts: list[str] | None = None, real_share: float = 0.0) -> SeedSet | None:
    """Accumulate: the rows several published versions added (each with its depth and source),
    plus real seeds from `real_texts` so that real seeds are at least `real_share` of them, in a
    deterministic order that mixes versions and real rows evenly (reshuffled as versions grow).
    None when the dataset has no version yet and seeds.path is there to seed the first run."""
    from synthfactory.store import DatasetStore

    field_name = "seeds.from_versions" if config.from_versions else "seeds.from_version"
    source = config.from_versions or config.from_version
    assert source is not None  # called only for seeds from versions (`load_seeds`)
    uri, _, named = source.rpartition("@")
    root = uri or own
    if root is None:
        raise RecipeError(f"{field_name}: name the dataset (STORE/NAME@...) outside a run")
    store = DatasetStore(root)
    published = [v.version for v in store.versions()] if store.exists() else []
    versions = versions_named(named, published)
    if not versions:
        if config.path is not None:
            return None
        raise RecipeError(f"{field_name}: {store.uri} has no published version matching @{named} "
                          f"(versions: {published or 'none'}); add seeds.path to seed the first run")
    try:
        rows = store.rows_added_by_versions(versions).to_pylist()
    except UserError as exc:
        raise RecipeError(f"{field_name}: {exc}") from None
    key = str(max(versions))  # a new version reshuffles, so each run draws a new mix of the pool
    pool = [SeedRow(seed_id=row["id"], source=row["source"], generation_depth=int(row["generation_depth"] or 0),
                    fields={**json.loads(row["seed"] or "{}"), "text": row["text"], "prompt": row["prompt"] or ""},
                    location=f"{Path(store.uri).name}@{row['version']}:{row['id']}")
            for row in sorted(rows, key=lambda r: stable_hash(r["id"], key))]
    real = [s for s in pool if s.source == "real"]
    synthetic = [s for s in pool if s.source != "real"]
    if real_texts and real_share > 0:
        wanted = max(0, math.ceil((real_share * len(pool) - len(real)) / (1.0 - real_share) - 1e-9))
        have = {s.fields["text"] for s in pool}
        fresh = sorted((t for t in dict.fromkeys(real_texts) if t not in have), key=lambda t: stable_hash(t, key))
        real += [SeedRow(seed_id="r" + stable_hash(t), fields={"text": t, "prompt": ""}, source="real",
                         location=f"real:{stable_hash(t)[:12]}") for t in fresh[:wanted]]
    return _limit_depth(SeedSet(rows=_interleave(real, synthetic), versions=versions), config.max_depth)


def _limit_depth(seeds: SeedSet, max_depth: int | None) -> SeedSet:
    """Rows made from a seed are one generation deeper; refuse seeds that would exceed max_depth."""
    if max_depth is None:
        return seeds
    keep = [s for s in seeds.rows if s.generation_depth + 1 <= max_depth]
    over = [QuarantinedRow("seeds", f"max_depth: a row from this seed would be depth {s.generation_depth + 1} "
                                    f"> seeds.max_depth {max_depth}", json.dumps(s.fields, default=str), s.seed_id)
            for s in seeds.rows if s.generation_depth + 1 > max_depth]
    return SeedSet(rows=keep, quarantined=seeds.quarantined + over, versions=seeds.versions)


def load_seeds(config: SeedsConfig, path: Path | None, own: str | Path | None = None,
               real_texts: list[str] | None = None) -> SeedSet:
    """Read every seed row; good rows get a content id, bad rows a reason (duplicates, empty
    template variables and benchmark text are screened at planning, on the rendered prompt).
    `own`: the run's dataset (for `from_versions: "@all"`); `real_texts`: the recipe's real rows,
    mixed into seeds from versions at `seeds.real.share`."""
    if config.from_versions or config.from_version:
        accumulated = load_versions_seeds(config, own, real_texts, config.real.share if config.real else 0.0)
        if accumulated is not None:
            return accumulated
    assert path is not None  # seeds.path is set whenever no version gives the seeds (SeedsConfig checks)
    good, bad = read_rows(path, "seeds", config.format, config.field, config.max_chars, "seeds.path", "seeds.max_chars")
    # a corpus's rows are passages: each is also the `source` a grounded verifier checks against
    passages = bool(config.path and config.path.startswith("corpus:"))
    # duplicates are found at planning, on the prompt they render (plan.render_seeds)
    rows = []
    for r in good:
        fields = r.fields
        assert fields is not None  # read_rows keeps the rows that parsed
        rows.append(SeedRow(seed_id="s" + stable_hash(fields),
                            fields={**fields, "source": fields["text"]} if passages else fields, location=r.location))
    result = SeedSet(rows=rows, quarantined=bad)
    return _limit_depth(result, config.max_depth)
