"""The publish sequence, once per run, after its last batch:

    dedup across the run -> trim to the target -> quarantine -> index + embeddings -> ONE commit -> card

A version is visible only once its one commit lands; everything before it is idempotent per run,
so a publish that failed halfway is retried (or the run rerun) without duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from synthfactory.model.batch import BatchState
from synthfactory.model.columns import published_schema
from synthfactory.model.context import RunContext
from synthfactory.model.cost import Prices
from synthfactory.model.facts import RunFacts
from synthfactory.model.metadata import Judging, Quality, VersionMetadata
from synthfactory.publish.card import write_card
from synthfactory.quality.guards import QualityGuards
from synthfactory.quality.versioning import dedup_across_run, version_quality
from synthfactory.recipe import Recipe
from synthfactory.recipe.columns import line_columns
from synthfactory.run.control import trim_to_target
from synthfactory.run.results import (
    commit_metadata,
    not_published_reason,
    published_rows,
    quarantine_records,
    totals_for,
    verification_totals,
)
from synthfactory.store import DatasetStore

log = logging.getLogger(__name__)


def publish_run(context: RunContext, states: list[BatchState], store: DatasetStore, guards: QualityGuards,
                facts: RunFacts, min_rows: int = 1, info: Callable[..., None] | None = None,
                warn: Callable[..., None] | None = None) -> VersionMetadata:
    """Dedup across the run and trim to `batches.target_rows` (surplus quarantined as
    `over_target`), then the quarantine (idempotent per run), the version's index and
    embeddings, and last the one commit that makes the version visible. Fewer than `min_rows`
    accepted rows: the quarantine is written and nothing is published (`published: False`)."""
    info, warn = info or log.info, warn or log.warning
    recipe, plan = context.recipe, context.plan
    states = trim_to_target(dedup_across_run(states, guards), recipe.batches.target_rows)
    totals = totals_for(plan, states)
    prices = Prices.from_card(recipe.card)
    store.quarantine(plan.run_id, plan.version, quarantine_records(plan, states))
    declared = line_columns(recipe, guards.method)  # what the line adds to the base row, by whom
    schema = published_schema(declared)
    rows = published_rows(states, schema, declared)
    verification = verification_totals(states, {v.name: v.method for v in recipe.verification})
    if totals.accepted < min_rows:
        metadata = commit_metadata(plan, states, totals, facts, method=guards.method.name, verification=verification,
                                   not_published_because=not_published_reason(plan.dataset, totals, min_rows,
                                                                               store.quarantine_uri), prices=prices)
        store.clear_staged([b.batch_id for b in plan.batches])  # finished: a rerun of this recipe would repeat it
        info("%s", metadata.not_published_because)  # the CLI prints it as its error
        return metadata
    judging = judging_metadata(recipe, states, store) if recipe.grading is not None else Judging()
    dups = totals.reasons.get("exact_duplicate", 0) + totals.reasons.get("near_duplicate", 0)
    quality = version_quality(rows, plan.version, guards, store.index_path, store.embeddings_path,
                              dups / totals.generated if totals.generated else 0.0)
    metadata = commit_metadata(plan, states, totals, facts, method=guards.method.name, verification=verification,
                               judging=judging, quality=Quality.model_validate(quality), prices=prices)
    store.publish(rows, metadata, schema)
    store.clear_staged([b.batch_id for b in plan.batches])  # also batches a resumed run with a target never needed
    info("published %s version %d: %d rows", store.uri, plan.version, totals.accepted)
    try:  # after the commit: a card that cannot be written must not fail a published version
        info("dataset card: %s", write_card(store, plan.version))
    except Exception as exc:  # `synthfactory export` writes it again
        warn("dataset card of version %d not written: %s", plan.version, exc)
    return metadata


def judging_metadata(recipe: Recipe, states: list[BatchState], store: DatasetStore) -> Judging:
    """What a version says about its judges: the calibration of exactly these judges (if one was
    run for this dataset), the bias checks on this run's graded rows, and the panel's agreement."""
    from synthfactory.grading.bias import graded_rows, judge_bias
    from synthfactory.grading.calibration import latest_calibration
    from synthfactory.grading.learned import stored_summary
    from synthfactory.grading.panel import describe_judges

    assert recipe.grading is not None  # asked only for a recipe with judges (`commit`)
    agreements = [s.judge_agreement for s in states if s.judge_agreement is not None]
    judges = [{**judge, "cross_validated": stored_summary(store.root, recipe.grading, judge["model"])}
              if judge["method"] == "learned" else judge for judge in describe_judges(recipe)]
    calibration = latest_calibration(store.root, recipe.grading)
    learned_now = {j["model"].removeprefix("learned:") for j in judges if j["method"] == "learned"}
    if calibration and learned_now != {e["fingerprint"] for e in calibration.get("learned") or []}:
        calibration = None  # it measured another model of the learned judge (more labels since): not these judges
    return Judging(
        calibration=calibration,
        bias=judge_bias(recipe, graded_rows(states)),
        agreement=round(sum(agreements) / len(agreements), 4) if agreements else None,
        judges=judges,
    )
