"""What a run commits with its version: one typed record (`VersionMetadata`).

Written in one place (`run.results.commit_metadata`), stored as the JSON of the version's Delta
commit (`DatasetStore.publish`), and parsed back by `DatasetStore.versions()` for every reader:
the card, the run report, the CLI (`versions`, the run summary), `diff`, export and push.

It lives in `run/` because a run makes it: its pieces are the run's totals, cost (`run.cost`),
gate outcomes, engine stats, stop and judging; the store and `publish/` only read it.

The JSON keeps the keys it always had, most of them flat (`generated`, `engine_requests`,
`judge_bias`, ...), so older tooling reads it unchanged. In Python, flat keys are grouped by what
they describe (`meta.totals.generated`, `meta.engines.requests`, `meta.judging.bias`). Versions
written by earlier code parse with defaults for what they lack (cost, stop, budget, judges,
quality pieces); keys this model does not know are kept (`model_extra`) and written back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from synthfactory.model.cost import Cost, Prices


class _Block(BaseModel):
    """A nested object of the JSON (`cost`, `quality`, `judge_bias`, ...): unknown keys are kept."""

    model_config = ConfigDict(extra="allow")


class _FlatGroup(BaseModel):
    """Keys that sit at the top level of the JSON, grouped in Python; a field's alias is its key."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    @classmethod
    def json_keys(cls) -> list[str]:
        """The JSON keys of this group."""
        return [field.alias or name for name, field in cls.model_fields.items()]


class RunTotals(_FlatGroup):
    """Counts that always reconcile: generated = accepted + rejected + quarantined."""

    generated: int = 0
    accepted: int = 0
    rejected: int = 0
    quarantined: int = 0
    real_published: int = 0
    seeds_quarantined: int = 0
    seeds_recycled: int = 0
    seed_versions: list[int] = Field(default_factory=list)  # published versions the seeds came from
    seed_real_share: float = 0.0  # of the planned work items, the share whose seed is real (depth 0, source real)
    batches: int = 0
    batches_passed: int = 0
    batches_quarantined: int = 0
    batches_resumed: int = 0  # finished in an earlier, interrupted run of the recipe
    reasons: dict[str, int] = Field(default_factory=dict)
    # stage of the line -> synthetic rows rejected or quarantined there
    left_at: dict[str, int] = Field(default_factory=dict)


class GateRecord(_FlatGroup):
    """The Great Expectations gate: the suite, each batch's outcome, what failed, Data Docs pages."""

    suite: str | None = None
    outcomes: dict[str, str] = Field(default_factory=dict, alias="validation")  # batch id -> passed|quarantined
    failures: dict[str, list[str]] = Field(default_factory=dict, alias="validation_failures")
    data_docs: dict[str, str] = Field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(1 for status in self.outcomes.values() if status == "passed")

    @property
    def quarantined(self) -> list[str]:
        """Batch ids the suite quarantined, in batch order."""
        return [batch for batch, status in self.outcomes.items() if status == "quarantined"]


class EngineStats(_FlatGroup):
    """What the engines did: requests, busy engine-seconds (and their share of the run's engine
    time), where they ran, batches retried after a lost replica, and when they were ready.
    `EnginePool.stats()` returns it; the run driver adds `ready_seconds` (`RunFacts.engines`)."""

    requests: int | None = Field(None, alias="engine_requests")
    busy_seconds: float | None = Field(None, alias="engine_busy_seconds")
    busy_share: float | None = Field(None, alias="engine_busy_share")
    nodes: list[str] = Field(default_factory=list, alias="engine_nodes")
    replicas: int | None = Field(None, alias="engine_replicas")
    batches_retried: int = Field(0, alias="engine_batches_retried")
    ready_seconds: float | None = Field(None, alias="engines_ready_seconds")


class Budget(_Block):
    limits: dict[str, float] = Field(default_factory=dict)
    stopped_by: str | None = None
    batches_in_flight_at_stop: int | None = None
    wall_seconds: float | None = None


class StopRecord(_FlatGroup):
    """Why the run stopped starting batches (`RunControl.outcome()`); all None before runs recorded it."""

    stopped: str | None = None
    target_rows: int | None = None
    batches_planned: int | None = None
    budget: Budget | None = None

    def sentence(self, batches_ran: int | None) -> str:
        """`stopped: REASON` and what it means, as the report, the card and the CLI say it."""
        target, budget = self.target_rows, self.budget or Budget()
        limit = budget.stopped_by
        why = {
            "complete": "every planned batch ran",
            "target": f"the target of {target} accepted rows was reached; surplus rows of batches in flight are "
                      "in the quarantine as `over_target`",
            "budget": f"starting another batch would have crossed `budget.{limit}` = "
                      f"{budget.limits.get(limit) if limit else None}; the batches in flight finished "
                      f"({budget.batches_in_flight_at_stop} of them)",
            "max_candidates": "`batches.max_candidates` was reached" + (f" before {target} rows" if target else ""),
            "seeds_exhausted": f"the seeds ran out (every seed times `samples_per_seed`) before {target} rows",
        }.get(self.stopped or "")
        if why is None:
            return "Not recorded (a version published before runs recorded why they stopped)."
        return (f"`stopped: {self.stopped}`" + (f" (`{limit}`)" if limit else "")
                + f": {why}; {batches_ran} of {self.batches_planned} planned batches ran.")


class JudgeInfo(_Block):
    """One judge as a version names it (`grading.panel.describe_judges`); a learned judge's also has
    `cross_validated` (`grading.learned.stored_summary`), kept as an extra key so older versions
    write back unchanged."""

    name: str
    method: str
    weight: float = 1.0
    model: str | None = None

    @property
    def cross_validated(self) -> dict[str, Any] | None:
        return (self.model_extra or {}).get("cross_validated")


class CalibrationLabels(_Block):
    file: str | None = None
    sha256: str | None = None
    rows: int | None = None
    good: int | None = None
    bad: int | None = None
    # also kept when written (extra keys, absent from older versions): `kind` ("file" or "table", a
    # dataset's `_labels/`) and `origins` (labelled rows per origin: real, constructed, unknown)


class OriginMeasure(_Block):
    """The judges measured on the labelled rows of one origin, at the version's threshold."""

    rows: int = 0
    good: int = 0
    base_rate: float | None = None
    auc: float | None = None
    auc_interval: list[float] | None = None  # 95% bootstrap
    precision: float | None = None
    precision_interval: list[float] | None = None  # 95% Wilson
    recall: float | None = None
    recall_interval: list[float] | None = None
    accepted: int = 0
    true_positives: int = 0


class Calibration(_Block):
    """The calibration of exactly these judges a version cites (`grading.calibration.latest_calibration`)."""

    fingerprint: str
    path: str | None = None
    created: str | None = None
    labels: CalibrationLabels = Field(default_factory=CalibrationLabels)
    auc: float | None = None
    threshold: float
    threshold_provenance: str = ""
    precision: float | None = None
    recall: float | None = None
    kappa: float | None = None
    target_precision: float | None = None
    suggested_threshold: float | None = None
    verbosity_spearman: float | None = None
    # `by_origin` (kept as written, absent from older versions): {origin: OriginMeasure}

    @property
    def by_origin(self) -> dict[str, OriginMeasure]:
        """The judges measured per origin of the labels; "real" is what a person would see."""
        written = (self.model_extra or {}).get("by_origin") or {}
        return {origin: OriginMeasure.model_validate(m) for origin, m in written.items()}

    @property
    def real(self) -> OriginMeasure | None:
        """The measure on labelled real outputs (a person or an agent labelled them), if any."""
        return self.by_origin.get("real")


class JudgeBias(_Block):
    """Bias checks on the run's graded rows (`grading.bias.judge_bias`)."""

    graded_rows: int = 0
    verbosity_spearman: float | None = None
    self_preference: float | None = None
    self_judges: list[str] = Field(default_factory=list)
    other_judges: list[str] = Field(default_factory=list)
    position_bias: float | None = None
    order_consistency: float | None = None
    pairs_checked: int = 0


class Judging(_FlatGroup):
    """What a version says about its judges; empty for runs that published nothing, or before panels."""

    judges: list[JudgeInfo] = Field(default_factory=list)
    calibration: Calibration | None = Field(None, alias="judge_calibration")
    bias: JudgeBias | None = Field(None, alias="judge_bias")
    agreement: float | None = Field(None, alias="judge_agreement")  # Krippendorff's alpha, mean over batches


class VerifierRecord(_Block):
    """One verifier of the run (`verification: [{name, method}]`): the claims it checked over every
    batch (a row's answer, or each candidate of a preference row), how many passed, and the rate."""

    method: str | None = None
    checked: int = 0
    passed: int = 0
    rate: float | None = None  # passed / checked; None when it checked nothing


class Quality(_Block):
    """Metrics of the rows a version adds (`quality.versioning.version_quality`). A metric the run
    did not measure is absent from the JSON, not null; metrics this model does not name are kept."""

    rows: int | None = None
    near_dup_rate: float | None = None
    distinct_1: float | None = None
    distinct_2: float | None = None
    compression_ratio: float | None = None
    real_share: float | None = None
    max_generation_depth: int | None = None
    rare_word_share: float | None = None
    vocab_coverage: float | None = None
    embedding_diversity: float | None = None
    vendi_score: float | None = None
    drift_vs_previous: float | None = None
    drift_vs_reference: float | None = None
    reference_coverage: float | None = None

    @model_serializer(mode="wrap")
    def _measured_only(self, handler: Any) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}

    def measured(self) -> dict[str, Any]:
        """Every metric this version measured, by name."""
        return self.model_dump()


class VersionMetadata(BaseModel):
    """Everything a version's commit records about the run that made it."""

    model_config = ConfigDict(extra="allow")
    GROUPS: ClassVar[dict[str, type[_FlatGroup]]] = {
        "totals": RunTotals, "gate": GateRecord, "engines": EngineStats, "stop": StopRecord, "judging": Judging}

    version: int
    run_id: str = ""
    recipe_hash: str = ""
    dataset: str = ""  # the recipe's name
    dataset_uri: str | None = None  # where it was published (runs before the overhead work did not record it)
    generator_model: str | None = None
    judge_model: str | None = None
    prompt_template_hash: str | None = None
    method: str = "text"
    published: bool = True
    not_published_because: str | None = None
    prefect_flow_run_id: str | None = None
    first_batch_seconds: float | None = None
    acceptance_rate: float = 0.0
    mean_score: float | None = None  # of the published synthetic rows
    score_histogram: dict[str, int] = Field(default_factory=dict)
    totals: RunTotals = Field(default_factory=RunTotals)
    gate: GateRecord = Field(default_factory=GateRecord)
    engines: EngineStats = Field(default_factory=EngineStats)
    stop: StopRecord = Field(default_factory=StopRecord)
    judging: Judging = Field(default_factory=Judging)
    cost: Cost = Field(default_factory=Cost)
    quality: Quality | None = None  # None: the run published nothing
    verification: dict[str, VerifierRecord] = Field(default_factory=dict)  # by verifier name; {}: none ran
    recipe: dict[str, Any] = Field(default_factory=dict)  # the recipe's own dump (its schema versions it)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_keys(cls, data: Any) -> Any:
        """The JSON's flat keys into their groups (keys given both ways: the flat one wins)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, group in cls.GROUPS.items():
            given = data.get(name)
            if isinstance(given, BaseModel):
                given = given.model_dump()
            found = {key: data.pop(key) for key in group.json_keys() if key in data}
            data[name] = {**(given or {}), **found}
        return data

    @model_validator(mode="after")
    def _price_older_versions(self) -> VersionMetadata:
        """Versions published before runs recorded their money are priced from their recipe's card."""
        if "money" not in self.cost.model_fields_set:
            prices = Prices.from_card(self.card)
            self.cost.money = prices.money(self.cost.tokens or 0, self.cost.engine_seconds)
            self.cost.currency = prices.currency if prices.priced else None
        return self

    @model_serializer(mode="wrap")
    def _flatten_groups(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for name in self.GROUPS:
            data.update(data.pop(name))
        return data

    @property
    def card(self) -> dict[str, Any]:
        """The recipe's `card` section (license, tags, prices) as the run recorded it."""
        return self.recipe.get("card") or {}

    def as_commit(self) -> dict[str, Any]:
        """The JSON the Delta commit holds (flat keys, as every version before this model wrote them)."""
        return self.model_dump(mode="json", fallback=str)  # as `json.dumps(..., default=str)` wrote it before
