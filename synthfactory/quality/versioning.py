"""Publish-time guards: dedup across the whole run, version metrics and drift, the persisted index."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from synthfactory.model.batch import BatchState
from synthfactory.quality import text as tq
from synthfactory.quality.dedup import write_version_index
from synthfactory.quality.embed import read_version_embeddings, write_version_embeddings
from synthfactory.quality.guards import QualityGuards
from synthfactory.storage import Location


def dedup_across_run(states: list[BatchState], guards: QualityGuards) -> list[BatchState]:
    """In batch order (deterministic, also after a resume): drop rows repeating an earlier batch."""
    q = guards.quality
    if not (q.enabled and q.dedup.enabled):
        return states
    run_index = guards.index.fork()
    out = []
    for state in sorted(states, key=lambda s: s.batch_index):
        if state.status != "passed":
            out.append(state)
            continue
        synthetic = [r for r in state.rows if r["source"] != "real"]
        hits = run_index.screen([guards.content(r) for r in synthetic], [r["id"] for r in synthetic],
                                [r["generation_depth"] for r in synthetic])
        dup_ids = {r["id"]: h for r, h in zip(synthetic, hits, strict=True) if h}
        if dup_ids:
            kept = [r for r in state.rows if r["id"] not in dup_ids or r["source"] == "real"]
            moved = [{**r, "stage": "publish",
                      "reason": f"{dup_ids[r['id']][0]}: of {dup_ids[r['id']][1]} (earlier batch)"}
                     for r in state.rows if r["id"] in dup_ids and r["source"] != "real"]
            state = replace(state, rows=kept, rejected=state.rejected + moved)
        out.append(state)
    return out


def version_quality(rows: list[dict[str, Any]], version: int, guards: QualityGuards, index_folder: Location | Path,
                    embeddings_folder: Location | Path, near_dup_rate: float) -> dict[str, Any]:
    """Metrics of the rows a version adds, drift vs the previous version and the reference set;
    writes the version's LSH index and embeddings next to the table (before the commit)."""
    q = guards.quality
    texts = [guards.content(r) for r in rows]
    metrics: dict[str, Any] = {
        "rows": len(rows), "near_dup_rate": near_dup_rate,
        "distinct_1": tq.distinct_n(texts, 1), "distinct_2": tq.distinct_n(texts, 2),
        "compression_ratio": tq.compression_ratio(texts),
        "real_share": sum(r["source"] == "real" for r in rows) / len(rows) if rows else 0.0,
        "max_generation_depth": max((r["generation_depth"] for r in rows), default=0),
    }
    tails = guards.tails
    generated = [r["source"] != "real" for r in rows]  # the tails of what the generator wrote
    if tails is not None:
        written = [t for t, g in zip(texts, generated, strict=True) if g]
        metrics["rare_word_share"] = tails.rare_word_share(written)
        metrics["vocab_coverage"] = tails.vocab_coverage(written)
    if q.enabled and q.dedup.enabled:
        write_version_index(index_folder, version, texts, [r["id"] for r in rows],
                            [r["generation_depth"] for r in rows], q.dedup.threshold, q.dedup.num_perm, q.dedup.bands)
    if q.enabled and q.embeddings and rows:
        from synthfactory.quality.embed import frechet_distance, mean_pairwise_cosine_distance, vendi_score

        vectors = guards.embedder.encode([r["id"] for r in rows], texts)
        metrics["embedding_diversity"] = mean_pairwise_cosine_distance(vectors)
        metrics["vendi_score"] = vendi_score(vectors)
        previous = read_version_embeddings(embeddings_folder, version - 1)
        if previous is not None:
            metrics["drift_vs_previous"] = frechet_distance(vectors, previous)
        if tails is not None and tails.vectors is not None:
            metrics["drift_vs_reference"] = frechet_distance(vectors, tails.vectors)
            metrics["reference_coverage"] = tails.reference_coverage(vectors[[i for i, g in enumerate(generated) if g]])
        write_version_embeddings(embeddings_folder, version, [r["id"] for r in rows], vectors)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
