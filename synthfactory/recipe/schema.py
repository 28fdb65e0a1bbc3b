"""The recipe's schema: the YAML a user writes, validated by pydantic with forbidden extras.

A recipe says which seeds to read, how to generate from them, how to grade, which Great
Expectations suite gates each batch, and how work is cut into batches.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jinja2
import jinja2.sandbox
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from synthfactory.errors import RecipeError
from synthfactory.registry import ENGINES, JUDGES, METHODS, VERIFIERS
from synthfactory.storage.options import check_variable_names

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
CRITERION_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# the names below come from the registries (synthfactory/registry.py); what each name takes as
# options (`generation.method_options`, an engine's `options`, `quality.filters`) is checked
# against its implementation's own model when the recipe is loaded (recipe/load.py)
MethodName = Annotated[str, AfterValidator(METHODS.check)]
EngineName = Annotated[str, AfterValidator(ENGINES.check)]
JudgeName = Annotated[str, AfterValidator(JUDGES.check)]
VerifierName = Annotated[str, AfterValidator(VERIFIERS.check)]


class StrictModel(BaseModel):
    """Every recipe section forbids unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RealDataConfig(StrictModel):
    """Real rows mixed into every batch so each published version holds at least `share` of them;
    with seeds from published versions, also real seeds at `share` of the seeds."""

    path: str = Field(description="text/JSONL/Parquet file, or corpus:python-docs (installs with the project)")
    field: str = Field("text", description="column (JSONL/Parquet) holding the real text; text files: each line")
    share: float = Field(0.2, gt=0.0, lt=1.0)


class SeedsConfig(StrictModel):
    path: str | None = Field(None, description="text file of topics, JSONL, Parquet, or a datasets.save_to_disk folder")
    from_version: str | None = Field(
        None, pattern=r"^.+@[0-9]+$", description="seed from the rows a published version added: STORE/NAME@VERSION")
    from_versions: str | None = Field(
        None, pattern=r"^[^@]*@(all|latest|[0-9]+|[0-9]+\.\.([0-9]+|latest))$",
        description=("accumulate: seed from the rows several versions added, STORE/NAME@1..latest, @all, @3..5, "
                     "@latest; nothing before @ is this recipe's own dataset. With seeds.path too, the path "
                     "seeds the first run (no versions yet)"))
    format: Literal["auto", "text", "jsonl", "parquet", "hf"] = "auto"
    field: str = Field("topic", description="template variable a line of a text file becomes")
    max_chars: int = Field(2000, ge=1, le=1_000_000)
    max_depth: int | None = Field(None, ge=1, le=1000, description="refuse seeds whose rows would be deeper")
    real: RealDataConfig | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SeedsConfig:
        if self.from_versions is not None:
            if self.from_version is not None:
                raise ValueError("give seeds.from_version or seeds.from_versions, not both")
            return self
        if (self.path is None) == (self.from_version is None):
            raise ValueError("give exactly one of seeds.path or seeds.from_version")
        return self


class SamplingConfig(StrictModel):
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(128, ge=1, le=32768)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class GenerationConfig(StrictModel):
    method: MethodName = Field("text", description="how rows are made: text, instruct, conversation, preference, "
                                                 "structured, evol (synthfactory/methods/)")
    method_options: dict[str, Any] = Field(default_factory=dict, description="the method's own options")
    engine: EngineName = Field("llamacpp", description="llamacpp, vllm, openai (synthfactory/engines/)")
    model: str = Field("smollm2-135m-instruct", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict, description=(
        "the engine's own options (its `Options` model): replicas, threads, base_urls, ..."))
    system_prompt: str | None = None
    prompt_template: str = Field(min_length=1, description="Jinja2; seed fields are its variables")
    samples_per_seed: int = Field(1, ge=1, le=10_000)
    sampling: SamplingConfig = SamplingConfig()

    @field_validator("prompt_template")
    @classmethod
    def _template_compiles(cls, value: str) -> str:
        try:
            template_environment().parse(value)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"Jinja2 syntax error at line {exc.lineno}: {exc.message}") from None
        return value


class Criterion(StrictModel):
    name: str = Field(pattern=CRITERION_PATTERN)
    description: str = Field(min_length=1, description="a yes/no statement, e.g. 'The facts are correct.'")


LLM_JUDGES = JUDGES.where(llm=True)  # judges that ask an engine: they take engine, model, options, rubric


class JudgeConfig(StrictModel):
    """One judge of a panel: an LLM (`json`, `logprobs`) or a signal that is not an LLM (`relevance`,
    `form`); `synthfactory.registry.JUDGES` lists them."""

    name: str = Field(pattern=CRITERION_PATTERN)
    method: JudgeName = "logprobs"
    engine: EngineName | None = Field(None, description="LLM judges; default: grading.engine, else the generator's")
    model: str | None = Field(None, description="LLM judges; default: grading.model, else the generator's")
    options: dict[str, Any] | None = Field(None, description=(
        "LLM judges: the engine's options; default: grading.options, else the generator's (same engine only)"))
    rubric: list[Criterion] | None = Field(None, min_length=1, max_length=20,
                                           description="LLM judges; default: grading.rubric")
    weight: float = Field(1.0, ge=0.0, le=100.0, description=(
        "its share of the `mean` aggregate; 0: an observer, graded and measured (scores, agreement, "
        "bias checks, calibration) but without a vote in any aggregate"))
    labels: str | None = Field(None, min_length=1, description=(
        "learned judges: the labelled rows it is trained on, a JSONL/Parquet file (relative to the recipe) "
        "or STORE/NAME (that dataset's labels table)"))
    features: list[Literal["embeddings", "signals", "judges", "generator"]] | None = Field(
        None, min_length=1, description=(
            "learned judges: the feature groups it reads (default: MiniLM embeddings, text signals, the other "
            "judges' scores; `generator`: the response's token log-probabilities under a llama.cpp generator)"))
    _labels_path: Any = PrivateAttr(None)  # `labels` resolved against the recipe folder (load_recipe sets it)
    _generator: Any = PrivateAttr(None)  # (model, system prompt) of the recipe's generator (load_recipe sets it)

    @model_validator(mode="after")
    def _llm_fields_for_llms(self) -> JudgeConfig:
        if not JUDGES.fact(self.method, "llm"):
            given = [f for f in ("engine", "model", "options", "rubric") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only LLM judges ({', '.join(LLM_JUDGES)}) take these; "
                                 f"{self.method} is not an LLM")
        learned = JUDGES.fact(self.method, "learned", False)
        if learned and self.labels is None:
            raise ValueError("labels: a learned judge needs labelled rows (a JSONL/Parquet file or STORE/NAME)")
        if not learned and (self.labels is not None or self.features is not None):
            raise ValueError(f"labels, features: only learned judges take these; {self.method} is not learned")
        return self


class GradingConfig(StrictModel):
    engine: EngineName | None = Field(None, description="default: the generator's engine")
    model: str | None = Field(None, description="default: the generator's model (self-grading)")
    options: dict[str, Any] | None = Field(None, description="the engine's options; default: the generator's "
                                                             "(same engine only)")
    method: str = Field(
        "json", description="an LLM judge: json, constrained grades per criterion; logprobs, P(yes) per criterion")
    rubric: list[Criterion] | None = Field(None, min_length=1, max_length=20)
    judges: list[JudgeConfig] | None = Field(
        None, min_length=1, max_length=10, description="a panel; without it, one LLM judge from the fields above")
    aggregate: Literal["mean", "min", "majority"] = Field(
        "mean", description="a panel's row score: weighted mean, minimum, or the share of judges at the threshold")
    scale_min: int = Field(1, ge=0, le=100)
    scale_max: int = Field(5, ge=1, le=100)
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    max_attempts: int = Field(2, ge=1, le=10, description="judge tries before a row is rejected")
    max_tokens: int = Field(96, ge=8, le=4096)

    @field_validator("method")
    @classmethod
    def _llm_method(cls, value: str) -> str:
        if not JUDGES.fact(JUDGES.check(value), "llm"):
            raise ValueError(f"{value} is not an LLM judge; grading.method is one of {', '.join(LLM_JUDGES)} "
                             "(list other judges under grading.judges)")
        return value

    @field_validator("rubric")
    @classmethod
    def _unique_names(cls, value: list[Criterion] | None) -> list[Criterion] | None:
        names = [c.name for c in value or []]
        if len(set(names)) != len(names):
            raise ValueError(f"criterion names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _panel(self) -> GradingConfig:
        if self.judges is None:
            if not self.rubric:
                raise ValueError("rubric: a judge needs at least one criterion (or list grading.judges)")
            return self
        names = [j.name for j in self.judges]
        if len(set(names)) != len(names):
            raise ValueError(f"judges: names must be unique, got {names}")
        if not any(j.weight > 0 for j in self.judges):
            raise ValueError("judges: every weight is 0; at least one judge needs a vote")
        for index, judge in enumerate(self.judges):
            if judge.method in LLM_JUDGES and not (judge.rubric or self.rubric):
                raise ValueError(f"judges.{index}.rubric: an LLM judge needs a rubric (its own or grading.rubric)")
            if any(c.name == "score" for c in judge.rubric or self.rubric or []):
                raise ValueError(f"judges.{index}.rubric: 'score' names the judge's own score in a panel's "
                                 "scores; rename the criterion")
        return self

    @property
    def panel(self) -> list[JudgeConfig]:
        """Every judge, with its LLM fields resolved; a recipe without `judges` has one, named `judge`."""
        if self.judges is None:
            return [JudgeConfig(name="judge", method=self.method, engine=self.engine, model=self.model,
                                options=self.options, rubric=self.rubric)]
        return [j.model_copy(update={"engine": j.engine or self.engine, "model": j.model or self.model,
                                     "options": j.options if j.options is not None else
                                     self.options if j.engine in (None, self.engine) else None,
                                     "rubric": j.rubric or self.rubric})
                if j.method in LLM_JUDGES else j for j in self.judges]

    @property
    def pass_mark(self) -> float:
        """The row score a row needs: the threshold, or under `majority` more than half the votes."""
        if self.aggregate == "majority":
            n = sum(j.weight > 0 for j in self.panel)  # observers have no vote
            return (n // 2 + 1) / n
        return self.threshold

    def for_judge(self, judge: JudgeConfig) -> GradingConfig:
        """This grading seen by one LLM judge of the panel (its method, model and rubric)."""
        return self.model_copy(update={"method": judge.method, "engine": judge.engine, "model": judge.model,
                                       "options": judge.options, "rubric": judge.rubric, "judges": None})


class VerifierConfig(StrictModel):
    """One check of the `verify` stage (synthfactory/verify/): a row that fails it is quarantined
    as `verify_failed: <name>: <reason>` before any judge sees it. Verifiers run in list order."""

    name: str = Field(pattern=CRITERION_PATTERN, description="names the check in reasons, columns and metrics")
    method: VerifierName = Field(description="math_answer, python_tests, grounded, json_schema (synthfactory.registry)")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="the verifier's own options (its `Options` model)")


class ValidationConfig(StrictModel):
    suite: str = Field(min_length=1, description="Great Expectations suite JSON")
    on_failure: Literal["quarantine", "fail"] = "quarantine"


class DedupConfig(StrictModel):
    enabled: bool = True
    threshold: float = Field(0.7, gt=0.0, le=1.0, description="Jaccard similarity of word sets")
    num_perm: int = Field(128, ge=16, le=1024)
    bands: int = Field(16, ge=1, le=512)


class BenchmarkFile(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    path: str


class DecontaminationConfig(StrictModel):
    benchmarks: list[BenchmarkFile] = []
    ngram: int = Field(13, ge=3, le=50)


class QualityConfig(StrictModel):
    """Guards against known failure modes of synthetic data; `enabled: false` turns them all off."""

    enabled: bool = True
    filters: dict[str, Any] = Field(default_factory=dict, description=(
        "the screens' thresholds (min_chars, max_chars, max_repeated_ngram_ratio, max_duplicate_line_ratio, "
        "refusals, language, instruction_echo); each screen in synthfactory/quality/screens.py declares its own"))
    dedup: DedupConfig = DedupConfig()
    decontamination: DecontaminationConfig = DecontaminationConfig()
    embeddings: bool = Field(True, description="embedding diversity and drift with all-MiniLM-L6-v2")
    reference: str | None = Field(None, description="real reference texts (text/JSONL/Parquet) for drift")


class BatchesConfig(StrictModel):
    size: int = Field(8, ge=1, le=100_000)
    count: int | None = Field(None, ge=1, le=1_000_000, description="default: enough to cover every seed")
    target_rows: int | None = Field(None, ge=1, le=100_000_000, description=(
        "accepted rows wanted: batches start until this many passed, sized by the acceptance rate seen so "
        "far; exactly this many are published (surplus quarantined as over_target)"))
    max_candidates: int | None = Field(None, ge=1, le=1_000_000_000, description=(
        "most rows to generate; default every seed times samples_per_seed (or count x size)"))


class BudgetConfig(StrictModel):
    """Hard limits on what a run may spend. When starting another batch would cross one, no new
    batch starts, the batches in flight finish, and what passed is published (`stopped: budget`)."""

    max_tokens: int | None = Field(None, ge=1, description="prompt + completion tokens, generator and judges")
    max_engine_seconds: float | None = Field(None, gt=0.0, description="seconds the engines were busy, summed")
    max_cost: float | None = Field(None, gt=0.0, description="money, at the card's prices (needs one of them)")
    max_wall_seconds: float | None = Field(None, gt=0.0, description="seconds from the run's start")

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class PublishConfig(StrictModel):
    """When a run may publish a version: never an empty one."""

    min_rows: int = Field(1, ge=1, le=100_000_000,
                          description="accepted rows a run needs to publish; fewer: no version, exit 1")


class CardConfig(StrictModel):
    """What the dataset card says that the run cannot know: license, language, tags, prices."""

    license: str = Field("other", description="a Hub license id, e.g. apache-2.0")
    language: list[str] = Field(default_factory=lambda: ["en"])
    task_categories: list[str] = Field(default_factory=lambda: ["text-generation"])
    tags: list[str] = Field(default_factory=list)
    pretty_name: str | None = None
    price_per_gpu_hour: float | None = Field(None, ge=0.0, description="per engine-hour")
    price_per_million_tokens: float | None = Field(None, ge=0.0, description="prompt + completion tokens")
    currency: str = "USD"


class Recipe(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    card: CardConfig = CardConfig()
    seeds: SeedsConfig
    generation: GenerationConfig
    grading: GradingConfig | None = Field(None, description=(
        "the judges; required unless `verification` is given (rows then pass with no judge, score null)"))
    verification: list[VerifierConfig] = Field(default_factory=list, max_length=10, description=(
        "checks a row cannot fool, run after the screens and before grading"))
    validation: ValidationConfig
    quality: QualityConfig = QualityConfig()
    batches: BatchesConfig = BatchesConfig()
    budget: BudgetConfig = BudgetConfig()
    publish: PublishConfig = PublishConfig()
    storage_options: dict[str, str] | None = Field(None, description=(
        "how the store's credentials are found: a standard variable name (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, "
        "...) -> the NAME of the environment variable holding its value, never the value; without it the "
        "standard variables and each library's provider chain apply (synthfactory/storage/options.py)"))

    @field_validator("storage_options")
    @classmethod
    def _names_not_values(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        try:
            check_variable_names(value)
        except RecipeError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _judged_or_verified(self) -> Recipe:
        names = [v.name for v in self.verification]
        if len(set(names)) != len(names):
            raise ValueError(f"verification: names must be unique, got {names}")
        if self.grading is None and not self.verification:
            raise ValueError("grading: Field required (a recipe without `verification` needs a judge)")
        if self.grading is not None and self.verification and self.generation.method == "preference":
            raise ValueError("grading: a preference recipe with `verification` takes no grading: its verifiers "
                             "choose each pair (chosen verified right, rejected verified wrong)")
        return self

    @model_validator(mode="after")
    def _prices_for_max_cost(self) -> Recipe:
        if self.budget.max_cost is not None and self.card.price_per_gpu_hour is None \
                and self.card.price_per_million_tokens is None:
            raise ValueError("budget.max_cost needs a price: set card.price_per_gpu_hour or "
                             "card.price_per_million_tokens")
        return self


def template_environment() -> jinja2.sandbox.SandboxedEnvironment:
    """Sandboxed and strict: a seed field the template needs but lacks is an error, not ''."""
    return jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def _message(err: Any) -> str:
    return str(err["msg"]).removeprefix("Value error, ")
