"""How much a run does (`synthfactory.run.control`), driven by the run driver's own loop
(`synthfactory.run.driver.BatchLoop`) on the local executor, with a stage line whose batches
"finish" from a stub: target sizing, the recount after dedup, stop reasons, budgets and their
bound, trimming to the target, and the cost block. Seconds, no engines; the end-to-end runs are
in test_target.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from synthfactory.errors import EngineFailure, RecipeError
from synthfactory.model.batch import BatchState, synthetic
from synthfactory.model.cost import PerRow, Prices, Spend, run_cost
from synthfactory.model.plan import BatchPlan
from synthfactory.recipe import load_recipe
from synthfactory.registry import STAGES
from synthfactory.run.control import RunControl, trim_to_target, wilson_interval, wilson_midpoint
from synthfactory.run.driver import BatchLoop
from synthfactory.run.executor import LocalExecutor
from synthfactory.run.stages import Stage
from tests.conftest import ROOT


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class StubStages:
    """The stage line with no engine: `generate` makes a batch's rows (`accept(index)` of them pass,
    the rest are rejected; ids from `ids(index, k)`), `validate` finishes it (the clock advances by
    one batch); every other stage hands the batch on."""

    def __init__(self, accept, tokens_per_row: int = 100, seconds_per_batch: float = 1.0,
                 clock: FakeClock | None = None, ids=lambda index, k: f"{index}-{k}") -> None:
        self.accept, self.tokens, self.seconds = accept, tokens_per_row, seconds_per_batch
        self.clock, self.ids = clock, ids

    def generate(self, batch: BatchPlan) -> BatchState:
        rows = [{"id": self.ids(batch.batch_index, k), "source": "synthetic", "prompt_tokens": self.tokens}
                for k in range(len(batch.items))]
        passed = self.accept(batch.batch_index)
        return BatchState(batch.batch_id, batch.batch_index, "generated", rows=rows[:passed], rejected=rows[passed:],
                          engine_seconds=self.seconds)

    def validate(self, state: BatchState) -> BatchState:
        if self.clock is not None:
            self.clock.now += self.seconds
        return replace(state, stage="validated", status="passed")

    def __getattr__(self, stage: str):
        return lambda state: state  # screen, grade, filter, measure


class StubStage(Stage):
    """A registered stage's place in the line, run by `StubStages`."""

    def __init__(self, name: str, stages: StubStages) -> None:
        self.name, self.stages = name, stages  # type: ignore[misc]
        self.calls_engines = STAGES.load(name).calls_engines  # type: ignore[misc]

    def run(self, work, state):
        return getattr(self.stages, self.name)(state)


def run_loop(control: RunControl, stages: StubStages, window: int = 6,
             recount=lambda states: sum(synthetic(s.rows) for s in states)) -> BatchLoop:
    """The driver's loop over `control`'s batches, on one local worker thread (batches finish in
    the order they started, so the runs below are exactly repeatable)."""
    batches = [BatchPlan(f"b{i}", i, tuple(range(size))) for i, size in enumerate(control.sizes)]
    executor = LocalExecutor(workers=1)
    try:
        line = [StubStage(name, stages) for name in STAGES]
        loop = BatchLoop(control, executor, None, line, batches, window=window, recount=recount)
        loop.run()
    finally:
        executor.close()
    return loop


def drive(control: RunControl, accept, tokens_per_row: int = 100, window: int = 6,
          seconds_per_batch: float = 1.0, clock: FakeClock | None = None) -> list[int]:
    """Run the driver's loop with `accept(index)` rows of batch `index` passing. Returns the
    batches started, in order."""
    return run_loop(control, StubStages(accept, tokens_per_row, seconds_per_batch, clock), window).started


def test_target_starts_only_the_batches_the_acceptance_rate_says_it_needs():
    control = RunControl(sizes=[10] * 20, target=12, replicas=2)
    started = drive(control, accept=lambda i: 5)  # half pass
    # 0.5 expected per row before any batch finished: 3 batches of 10 cover 12 at 0.5; then the
    # observed rate (5 of 10) keeps it there
    assert started == [0, 1, 2]
    assert control.stopped == "target" and control.accepted >= 12
    assert control.fraction(3) == 1.0


def test_target_starts_more_when_batches_fall_short():
    control = RunControl(sizes=[10] * 20, target=12, replicas=2)
    yields = {0: 1, 1: 0, 2: 1}
    started = drive(control, accept=lambda i: yields.get(i, 4))
    assert len(started) > 3, "a poor acceptance rate must plan more batches"
    assert control.stopped == "target"
    assert control.accepted >= 12


def test_the_recount_after_dedup_starts_more_batches_when_duplicates_fall_away():
    """Once the target seems reached, the loop counts again after dedup across the run (what
    publish will count): rows that duplicate another batch's do not count toward the target."""
    control = RunControl(sizes=[10] * 6, target=10, replicas=2)
    every_batch_the_same = StubStages(accept=lambda i: 5, ids=lambda index, k: f"same-{k}")
    loop = run_loop(control, every_batch_the_same,
                    recount=lambda states: len({r["id"] for s in states for r in s.rows}))
    assert loop.started == list(range(6)), "two batches of 5 'reached' 10 only before the recount"
    assert loop.accepted == 5 and control.accepted == 5 and control.stopped == "seeds_exhausted"
    assert len(loop.states) == 6 and loop.resumed == 0


def _failing(stages: StubStages, error: Exception, batch_index: int, times: int) -> list[int]:
    """Make `generate` of batch `batch_index` raise `error` the first `times` times; returns the calls."""
    made, calls = stages.generate, []

    def generate(batch: BatchPlan) -> BatchState:
        calls.append(batch.batch_index)
        if batch.batch_index == batch_index and calls.count(batch_index) <= times:
            raise error
        return made(batch)

    stages.generate = generate
    return calls


def test_a_failed_stage_ends_the_loop_with_its_own_error_unretried():
    stages = StubStages(accept=lambda i: 10)
    calls = _failing(stages, EngineFailure("engine llamacpp: replica lost"), batch_index=1, times=1)
    with pytest.raises(EngineFailure, match="replica lost"):
        run_loop(RunControl(sizes=[4] * 4, replicas=1), stages)
    assert calls.count(1) == 1, "an engine failure is ours: a retry would only repeat it"


def test_a_transient_failure_of_an_engine_stage_is_retried(monkeypatch):
    import synthfactory.run.executor as executor

    monkeypatch.setattr(executor, "RETRY_DELAY_S", 0.0)
    stages = StubStages(accept=lambda i: 4)
    calls = _failing(stages, ConnectionError("endpoint blip"), batch_index=1, times=executor.ENGINE_RETRIES)
    loop = run_loop(RunControl(sizes=[4] * 3, replicas=1), stages)
    assert calls.count(1) == 1 + executor.ENGINE_RETRIES and loop.accepted == 12
    stages = StubStages(accept=lambda i: 4)
    calls = _failing(stages, ConnectionError("endpoint down"), batch_index=1, times=99)
    with pytest.raises(ConnectionError, match="endpoint down"):
        run_loop(RunControl(sizes=[4] * 3, replicas=1), stages)
    assert calls.count(1) == 1 + executor.ENGINE_RETRIES


def test_target_not_reached_says_why():
    seeds = RunControl(sizes=[4, 4], target=100)
    drive(seeds, accept=lambda i: 4)
    assert seeds.stopped == "seeds_exhausted" and seeds.accepted == 8
    capped = RunControl(sizes=[4, 4], target=100, capped=True)
    drive(capped, accept=lambda i: 4)
    assert capped.stopped == "max_candidates"
    plain = RunControl(sizes=[4, 4, 4])
    assert drive(plain, accept=lambda i: 0) == [0, 1, 2] and plain.stopped == "complete"


def test_token_budget_stops_starting_batches_and_overshoots_at_most_the_batches_in_flight():
    limit = 2500  # 10 batches of 1,000 tokens would be 10,000
    control = RunControl(sizes=[10] * 10, limits={"max_tokens": limit}, replicas=2)
    started = drive(control, accept=lambda i: 10, tokens_per_row=100)
    spent = control.spent.tokens
    assert control.stopped == "budget" and control.stopped_by == "max_tokens"
    assert len(started) < 10
    assert spent <= limit + control.in_flight_at_stop * 1000  # the documented bound
    outcome = control.outcome()
    assert outcome.stopped == "budget" and outcome.budget is not None and outcome.budget.stopped_by == "max_tokens"
    assert outcome.budget.batches_in_flight_at_stop == control.in_flight_at_stop and outcome.batches_planned == 10


def test_budget_starts_one_batch_per_replica_until_one_has_finished():
    control = RunControl(sizes=[10] * 10, limits={"max_tokens": 10**9}, replicas=2)
    assert [control.next_batch(), control.next_batch(), control.next_batch()] == [0, 1, None]
    control.finished(0, 10, Spend(1000, 1.0))
    assert control.next_batch() == 2 and control.next_batch() == 3


def test_cost_budget_uses_the_cards_prices_and_wall_budget_the_clock():
    control = RunControl(sizes=[10] * 10, limits={"max_cost": 0.25}, prices=Prices(per_million_tokens=100.0),
                         replicas=1)
    drive(control, accept=lambda i: 10, tokens_per_row=100)  # 0.1 per batch
    assert control.stopped_by == "max_cost"
    assert Prices(per_million_tokens=100.0).money(control.spent.tokens, 0) <= 0.25 + 0.1 * control.in_flight_at_stop

    clock = FakeClock()
    timed = RunControl(sizes=[10] * 10, limits={"max_wall_seconds": 3.5}, clock=clock, started_at=0.0, replicas=1)
    drive(timed, accept=lambda i: 10, window=1, seconds_per_batch=1.0, clock=clock)
    assert timed.stopped_by == "max_wall_seconds"
    assert clock.now <= 3.5 + 1.0


def test_no_budget_no_target_runs_every_batch_in_the_window():
    control = RunControl(sizes=[8] * 5, replicas=2)
    assert [control.next_batch() for _ in range(5)] == [0, 1, 2, 3, 4] and control.next_batch() is None


def _row(i: int, source: str = "synthetic") -> dict:
    spent = source != "real"  # real rows mixed in cost nothing
    return {"id": f"{source}-{i}", "source": source, "prompt_tokens": 10 * spent, "completion_tokens": 5 * spent,
            "judge_prompt_tokens": 20 * spent, "judge_completion_tokens": 1 * spent, "latency_s": 0.5 * spent,
            "judge_latency_s": 0.25 * spent}


def _state(index: int, rows: int, real: int = 0, rejected: int = 0, status: str = "passed") -> BatchState:
    return BatchState(f"b{index}", index, "validated",
                      rows=[_row(index * 100 + k) for k in range(rows)]
                      + [_row(index * 100 + k, "real") for k in range(real)],
                      rejected=[{**_row(index * 100 + 50 + k), "stage": "filter", "reason": "below_threshold: 0.1"}
                                for k in range(rejected)],
                      status=status, engine_seconds=1.0 * (rows + rejected))


def test_trim_to_target_keeps_the_first_rows_in_batch_order_and_quarantines_the_rest():
    states = [_state(2, 4, real=2), _state(0, 4, rejected=1), _state(1, 0, status="quarantined"), _state(3, 4)]
    out = trim_to_target(states, 6)
    kept = [r for s in out for r in s.rows if r["source"] == "synthetic"]
    assert len(kept) == 6
    assert [s.batch_index for s in out] == [0, 1, 2, 3]
    assert {r["id"] for r in out[0].rows} == {f"synthetic-{k}" for k in range(4)}
    moved = [r for s in out for r in s.quarantined]
    assert len(moved) == 2 + 4 and all(r["reason"].startswith("over_target") for r in moved)
    assert sum(r["source"] == "real" for r in out[2].rows) == 1  # half its rows kept: half its real rows
    before = sum(len(s.rows) + len(s.rejected) + len(s.quarantined) for s in states)
    after = sum(len(s.rows) + len(s.rejected) + len(s.quarantined) for s in out)
    assert before - after == 1  # only the real row that went with the trimmed rows; no generated row lost
    assert trim_to_target(states, None) is states


def test_cost_block_prices_only_with_prices_and_splits_per_row():
    states = [_state(0, 3, rejected=1), _state(1, 1, real=1, rejected=1)]
    unpriced = run_cost(states, Prices(), accepted=4)
    assert unpriced.tokens == 36 * 6 and unpriced.money is None and unpriced.currency is None
    assert unpriced.per_accepted_row == PerRow(tokens=36 * 6 / 4, engine_seconds=6 / 4, money=None)
    assert unpriced.per_rejected_row == PerRow(tokens=36, engine_seconds=0.75, money=None)
    priced = run_cost(states, Prices(per_engine_hour=3600.0, currency="EUR"), accepted=4)
    assert priced.money == 6.0 and priced.currency == "EUR"
    assert priced.per_accepted_row is not None and priced.per_accepted_row.money == 1.5
    assert run_cost([], Prices(), accepted=0).per_accepted_row == PerRow(tokens=None, engine_seconds=None, money=None)


def test_acceptance_interval_and_estimate():
    assert wilson_midpoint(0, 0) == 0.5
    low, high = wilson_interval(3, 5)
    assert 0.2 < low < 0.6 < high < 0.95
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert 0.0 < wilson_midpoint(0, 5) < 0.3 and 0.7 < wilson_midpoint(5, 5) < 1.0


def test_progress_bar_shows_accepted_of_target_and_rows_per_second():
    from synthfactory.cli import _ProgressBar
    from synthfactory.run.progress import RunProgress

    bar = _ProgressBar(enabled=False)
    aimed = bar.fields(RunProgress("batches", 1, 6, 4, target=10))
    assert (aimed["completed"], aimed["total"], aimed["unit"]) == (4, 10, "rows accepted")
    assert aimed["rate"].endswith("rows/s")
    assert bar.fields(RunProgress("batches", 2, 6, 12, target=10))["completed"] == 10  # surplus is not progress
    planned = bar.fields(RunProgress("batches", 2, 6, 5))
    assert (planned["completed"], planned["total"]) == (2, 6) and "5 rows accepted" in planned["unit"]


def test_budget_and_target_in_the_recipe(tmp_path):
    from tests.conftest import make_recipe

    plain = load_recipe(make_recipe(tmp_path))
    aimed = load_recipe(make_recipe(tmp_path, batches__target_rows=5, budget={"max_tokens": 1000}))
    assert aimed.recipe.batches.target_rows == 5 and aimed.recipe.budget.limits() == {"max_tokens": 1000}
    # how much to run is not what a batch holds: same hash, same batch ids, a resume finds its batches
    assert aimed.recipe_hash == plain.recipe_hash
    assert load_recipe(make_recipe(tmp_path), target_rows=7).recipe.batches.target_rows == 7
    with pytest.raises(RecipeError, match="budget.max_cost needs a price: set card.price_per_gpu_hour"):
        load_recipe(make_recipe(tmp_path, budget={"max_cost": 1.0}))
    with pytest.raises(RecipeError, match="max_wallclock"):
        load_recipe(make_recipe(tmp_path, budget={"max_wallclock": 1.0}))
    assert load_recipe(ROOT / "recipes" / "quickstart.yaml").recipe.budget.limits() == {}
