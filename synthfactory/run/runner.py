"""The run driver: the stage line every batch goes through, and the publish sequence.

    generate -> screen -> verify -> grade -> filter -> measure -> validate   (per batch, `STAGE_LINE`)
    dedup across the run -> quarantine -> index + embeddings -> ONE commit -> card   (`publish_run`)

Prefect tasks in `tasks/` wrap one stage each and the flow chains them in this order; without
Prefect, `BatchRunner.run` does the same for one batch (tests, notebooks, benchmarks).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Callable

from synthfactory.run import stages
from synthfactory.model.batch import BatchState
from synthfactory.publish.card import write_card
from synthfactory.run.control import trim_to_target
from synthfactory.model.cost import Prices
from synthfactory.grading import Panel
from synthfactory.methods import Method
from synthfactory.run.plan import BatchPlan, RunPlan, build_verifiers
from synthfactory.quality.guards import QualityGuards
from synthfactory.quality.versioning import dedup_across_run, version_quality
from synthfactory.recipe import LoadedRecipe, Recipe
from synthfactory.model.metadata import Judging, VersionMetadata
from synthfactory.run.results import (commit_metadata, not_published_reason, published_rows, quarantine_records,
                                      totals_for, verification_totals)
from synthfactory.model.rows import row_schema
from synthfactory.verify.base import Verifier
from synthfactory.inputs.seeds import SeedSet, load_seeds
from synthfactory.store import DatasetStore
from synthfactory.quality.validation import SuiteGate

STAGE_LINE = ("generate", "screen", "verify", "grade", "filter", "measure", "validate")
log = logging.getLogger(__name__)


@dataclass
class BatchRunner:
    """What every stage of a run's batches needs, built once per run: one method per stage."""

    plan: RunPlan
    recipe: Recipe
    guards: QualityGuards
    gate: SuiteGate
    chat: stages.ChatFn
    dataset_uri: Any = None  # the dataset's root Location (its credentials): where a learned judge keeps its model; None: retrain (preview)

    @functools.cached_property
    def panel(self) -> Panel | None:
        """The recipe's judges, built once per run (their embedder is the guards'); None: no grading."""
        if self.recipe.grading is None:
            return None
        return Panel(self.recipe.grading, embedder=lambda: self.guards.embedder, dataset_uri=self.dataset_uri)

    @functools.cached_property
    def verifiers(self) -> list[tuple[str, Verifier]]:
        """The recipe's verifiers, in its order, built once per run."""
        return build_verifiers(self.recipe)

    @property
    def method(self) -> Method:
        return self.guards.method  # one instance per run: the guards' (built from the same recipe)

    def generate(self, batch: BatchPlan) -> BatchState:
        return stages.generate_batch(self.plan, batch, self.recipe, self.chat, self.method)

    def screen(self, state: BatchState) -> BatchState:
        return stages.screen_batch(state, self.guards)

    def verify(self, state: BatchState) -> BatchState:
        return stages.verify_batch(state, self.method, self.verifiers)

    def grade(self, state: BatchState) -> BatchState:
        return stages.grade_batch(self.plan, state, self.recipe, self.chat, self.method, self.panel)

    def filter(self, state: BatchState) -> BatchState:
        grading = self.recipe.grading
        return stages.filter_batch(state, grading.pass_mark if grading is not None else None)

    def measure(self, state: BatchState) -> BatchState:
        return stages.measure_batch(self.plan, state, self.guards)

    def validate(self, state: BatchState) -> BatchState:
        return stages.settle_validation(state, self.gate.validate(state.rows, state.batch_id))

    def run(self, batch: BatchPlan) -> BatchState:
        """Every stage of the line, in order, for one batch."""
        state: Any = batch
        for stage in STAGE_LINE:
            state = getattr(self, stage)(state)
        return state


def run_seeds(loaded: LoadedRecipe, guards: QualityGuards, dataset_uri: str) -> SeedSet:
    """The seeds a run of `loaded` uses: its file or published versions, with the real share mixed
    in; seeds a file calls real that near-match published synthetic rows flagged as recycled."""
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path, own=dataset_uri, real_texts=guards.real_texts)
    if loaded.seeds_path is not None and not seeds.versions:
        seeds = guards.flag_recycled(seeds)
    return seeds


def publish_run(plan: RunPlan, states: list[BatchState], store: DatasetStore, guards: QualityGuards,
                extra: dict[str, Any], min_rows: int = 1, info: Callable[..., None] | None = None,
                warn: Callable[..., None] | None = None) -> VersionMetadata:
    """Dedup across the run and trim to `batches.target_rows` (surplus quarantined as
    `over_target`), then the quarantine (idempotent per run), the version's index and
    embeddings, and last the one commit that makes the version visible. Fewer than `min_rows`
    accepted rows: the quarantine is written and nothing is published (`published: False`)."""
    info, warn = info or log.info, warn or log.warning
    recipe = guards.loaded.recipe
    states = trim_to_target(dedup_across_run(states, guards), recipe.batches.target_rows)
    totals = totals_for(plan, states)
    prices = Prices.from_card(recipe.card)
    store.quarantine(plan.run_id, plan.version, quarantine_records(plan, states))
    schema = row_schema(guards.method, [v.name for v in recipe.verification])
    rows = published_rows(states, schema)
    method = {"method": guards.method.name,
              "verification": verification_totals(states, {v.name: v.method for v in recipe.verification})}
    if totals.accepted < min_rows:
        metadata = commit_metadata(plan, states, totals, {**extra, **method, "published": False, "not_published_because": (
            not_published_reason(plan.dataset, totals, min_rows, store.quarantine_uri))}, prices)
        store.clear_staged([b.batch_id for b in plan.batches])  # finished: a rerun of this recipe would repeat it
        info("%s", metadata.not_published_because)  # the CLI prints it as its error
        return metadata
    judging = judging_metadata(recipe, states, store) if recipe.grading is not None else Judging()
    dups = totals.reasons.get("exact_duplicate", 0) + totals.reasons.get("near_duplicate", 0)
    quality = version_quality(rows, plan.version, guards, store.index_path, store.embeddings_path,
                              dups / totals.generated if totals.generated else 0.0)
    metadata = commit_metadata(plan, states, totals, {**extra, **method, "judging": judging, "quality": quality,
                                                      "published": True}, prices)
    store.publish(rows, metadata, schema)
    store.clear_staged([b.batch_id for b in plan.batches])  # also batches a resumed run with a target never needed
    info("published %s version %d: %d rows", store.uri, plan.version, totals.accepted)
    try:  # after the commit: a card that cannot be written must not fail a published version
        info("dataset card: %s", write_card(store, plan.version))
    except Exception as exc:  # noqa: BLE001 - `synthfactory export` writes it again
        warn("dataset card of version %d not written: %s", plan.version, exc)
    return metadata


def judging_metadata(recipe: Recipe, states: list[BatchState], store: DatasetStore) -> Judging:
    """What a version says about its judges: the calibration of exactly these judges (if one was
    run for this dataset), the bias checks on this run's graded rows, and the panel's agreement."""
    from synthfactory.grading.bias import graded_rows, judge_bias
    from synthfactory.grading.calibration import latest_calibration
    from synthfactory.grading.learned import stored_summary
    from synthfactory.grading.panel import describe_judges

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
