"""The self-learning loop (expert iteration / rejection-sampling fine-tuning: STaR, ReST-EM): the
model generates, the recipe's verifiers keep what is right, the base model is tuned on every
verified row so far, and the tuned model generates the next round, if it beats the current one.

The steps, each finished by writing its record (`synthfactory.model.improve`), so a loop killed at
any point resumes where it stopped and never redoes a finished step:

1. `split`: the recipe's usable seeds split once, by a stable hash, into training and held-out seeds.
2. `evaluate_base` (round 0): the base model on the held-out split (pass@1 from k samples) and on
   held-out real text (perplexity).
3. `generate(k)`: the recipe run as any run is (`run_recipe`: verified, gated, published as version
   N of the same dataset), on the training seeds only, by the current model (its GGUF, served by the
   `llamacpp` engine). A run killed mid-way resumes its finished batches; a version already published
   by this round's recipe is adopted, not made again.
4. `train(k)`: the base model fine-tuned (LoRA on a CPU, all weights on a GPU) on the verified rows
   of every round so far, held-out seeds never among them, with real corpus paragraphs mixed in;
   evaluated like round 0; compared with the current model by a paired test over the held-out items;
   promoted only when better beyond the noise and its real-text perplexity is within the collapse
   guard of the base model's. Its adapter (or weights), GGUF and card are stored under `_models/round{k}/`.

The loop stops at the first round not promoted, and says why.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from synthfactory.cache import cache_root
from synthfactory.errors import NothingToPublishError, UserError
from synthfactory.improve.heldout import (
    HeldOutItems,
    check_answers,
    held_out_eval,
    held_out_items,
    paired_test,
    sample_answers,
    split_seeds,
    usable_seeds,
)
from synthfactory.model.improve import (
    MODELS_DIR,
    LoopState,
    ModelRecord,
    Perplexity,
    RoundRun,
    SeedSplit,
    dumps,
)
from synthfactory.model.lineage import stable_hash

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
REAL_PROMPT = "Continue this passage:\n\n"
GGUF = "model.gguf"


@dataclass(frozen=True)
class LoopOptions:
    """How big a loop is. `candidates`: answers generated per round (the run's `batches.max_candidates`;
    None: two per training seed, as the recipe samples); `epochs` over the training rows, at most
    `max_steps` optimizer steps; `real_mix`: the share of training examples that are real corpus
    paragraphs; `guard`: the largest real-text perplexity rise over the base model a promoted model
    may have."""

    held_out: int = 100
    samples: int = 2
    candidates: int | None = None
    epochs: float = 2.0
    max_steps: int = 200
    real_mix: float = 0.25
    real_items: int = 32
    guard: float = 0.05
    seed: int = 0
    lora: bool | None = None  # None: LoRA on a CPU, all weights on a GPU
    batch_size: int = 2
    eval_batch: int = 32
    keep_going: bool = False  # run every round asked, even past one not promoted (benches: the whole curve)

    def check(self) -> None:
        if self.samples < 1:
            raise UserError(f"--samples {self.samples}: sample at least 1 answer per held-out item")
        if not 0 <= self.real_mix < 1:
            raise UserError(f"--real-mix {self.real_mix}: give a share from 0 up to (not including) 1")
        if self.epochs <= 0 or self.max_steps < 1:
            raise UserError(f"--epochs {self.epochs} / max steps {self.max_steps}: train at least one step")
        if self.candidates is not None and self.candidates < 1:
            raise UserError(f"--candidates {self.candidates}: generate at least 1 answer a round")


SIZES: dict[str, LoopOptions] = {
    # a check that the loop runs end to end (tests, a first try): minutes on 2 cores, numbers too small to mean much
    "tiny": LoopOptions(held_out=16, samples=1, candidates=32, epochs=1.0, max_steps=8, real_items=8),
    # the CPU bench: 100 held-out items, 2 samples each, 96 answers generated a round
    "small": LoopOptions(held_out=100, samples=2, candidates=96, epochs=2.0, max_steps=80),
    # a GPU, or vLLM: every training seed each round, 4 samples per held-out item
    "default": LoopOptions(held_out=100, samples=4, candidates=None, epochs=2.0, max_steps=400),
}


@contextmanager
def all_cores() -> Iterator[None]:
    """Torch on every core this process may use while the block runs: a run in this process leaves it
    on one (the embedder takes one thread so the engines keep the rest), which halves a fine-tune."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The recipe's file paths (relative to its own folder) made absolute, so a copy of it written
    elsewhere reads the same files."""
    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not value.startswith(("corpus:", "/")) and "://" not in value:
            return str((base / value).resolve())
        return value

    seeds = data.get("seeds") or {}
    for key in ("path",):
        if key in seeds:
            seeds[key] = fix(seeds[key])
    if isinstance(seeds.get("real"), dict) and "path" in seeds["real"]:
        seeds["real"]["path"] = fix(seeds["real"]["path"])
    validation = data.get("validation") or {}
    if "suite" in validation:
        validation["suite"] = fix(validation["suite"])
    quality = data.get("quality") or {}
    if "reference" in quality:
        quality["reference"] = fix(quality["reference"])
    for bench in (quality.get("decontamination") or {}).get("benchmarks") or []:
        if isinstance(bench, dict) and "path" in bench:
            bench["path"] = fix(bench["path"])
    for judge in (data.get("grading") or {}).get("judges") or []:
        if isinstance(judge, dict) and "labels" in judge:
            judge["labels"] = fix(judge["labels"])
    return data


class ImproveLoop:
    """One recipe's loop over one dataset (`STORE/NAME`, NAME the recipe's name)."""

    def __init__(self, recipe_path: str | Path, store: str | Path = "store", options: LoopOptions | None = None,
                 progress: Progress | None = None) -> None:
        from synthfactory.recipe import load_recipe
        from synthfactory.store import DatasetStore

        self.options = options or SIZES["small"]
        self.options.check()
        self.recipe_path = Path(recipe_path)
        self.loaded = load_recipe(recipe_path)
        self.store = str(store)
        self.dataset = DatasetStore.for_run(store, self.loaded.recipe)
        self.models = self.dataset.root.child(MODELS_DIR)
        self.work = cache_root() / "improve" / stable_hash(self.dataset.uri, "improve work")[:16]
        self.say = progress or (lambda line: log.info("%s", line))
        self.base_model = str(self.loaded.recipe.generation.model)
        self._base: tuple[Any, Any] | None = None
        self._base_losses: list[Any] | None = None
        self._items: HeldOutItems | None = None

    # records -------------------------------------------------------------------------------------------

    def _read(self, kind: Any, *parts: str) -> Any:
        place = self.models.child(*parts)
        return kind.model_validate_json(place.read_text()) if place.exists() else None

    def _write(self, record: Any, *parts: str) -> None:
        self.models.child(*parts).write_text(dumps(record))

    def model_record(self, k: int) -> ModelRecord | None:
        return self._read(ModelRecord, f"round{k}", "model.json")

    def round_run(self, k: int) -> RoundRun | None:
        return self._read(RoundRun, f"round{k}", "run.json")

    def state(self) -> LoopState:
        return self._read(LoopState, "loop.json") or LoopState()

    def records(self) -> list[ModelRecord]:
        """Every round's model record so far, round 0 first."""
        out = []
        k = 0
        while (record := self.model_record(k)) is not None:
            out.append(record)
            k += 1
        return out

    # the steps -----------------------------------------------------------------------------------------

    def split(self) -> SeedSplit:
        """The recorded split, or a new one (written before any round runs)."""
        recorded = self._read(SeedSplit, "split.json")
        if recorded is not None:
            if len(recorded.held_out) != self.options.held_out:
                self.say(f"the split was recorded with {len(recorded.held_out)} held-out seeds; it is kept "
                         f"(not {self.options.held_out})")
            return recorded
        split = split_seeds(self.loaded, self.options.held_out)
        self._write(split, "split.json")
        self.say(f"split {len(split.train) + len(split.held_out)} usable seeds of {split.seeds_file}: "
                 f"{len(split.train)} train, {len(split.held_out)} held out")
        return split

    def items(self) -> HeldOutItems:
        if self._items is None:
            self._items = held_out_items(self.loaded, self.split())
        return self._items

    def base(self) -> tuple[Any, Any]:
        """A fresh trainable copy of the base model, and its tokenizer."""
        from synthfactory.probe.model import load_base_model

        return load_base_model(self.base_model)

    def _evaluate(self, model: Any, tokenizer: Any, round_no: int) -> tuple[Any, Perplexity | None]:
        """(held-out eval, real-text perplexity against the base model's) of a model."""
        import torch

        from synthfactory.probe.evaluate import paired_bootstrap, perplexity, text_losses

        if torch.cuda.is_available():  # on a GPU the base model is measured there too (it loads on the CPU)
            model = model.to("cuda")
        items = self.items()
        started = time.monotonic()
        answers = sample_answers(model, tokenizer, items, self.options.samples,
                                 seed=self.options.seed * 1000 + round_no, batch_size=self.options.eval_batch,
                                 on_batch=lambda done, total: self.say(f"round {round_no}: answered {done}/{total} "
                                                                       "held-out items"))
        evaluation = held_out_eval(check_answers(items, answers), items, time.monotonic() - started,
                                   seed=self.options.seed, answers=answers)
        texts = self._real_texts()
        if not texts:
            return evaluation, None
        if self._base_losses is None:
            base = self.base()[0].to(next(model.parameters()).device) if round_no else model
            self._base_losses = text_losses(base, tokenizer, texts)
        losses = text_losses(model, tokenizer, texts)
        compared = paired_bootstrap(self._base_losses, losses, seed=self.options.seed)
        return evaluation, Perplexity(items=len(texts), value=perplexity(losses), base=compared["base"],
                                      relative=compared["relative"],
                                      relative_interval=compared.get("relative_interval"))

    def _real_texts(self) -> list[str]:
        from synthfactory.errors import RecipeError
        from synthfactory.probe.evalsets import real_text_eval

        if self.options.real_items <= 0:
            return []
        try:
            return real_text_eval(self.options.real_items).texts
        except RecipeError as exc:
            self.say(f"no real-text perplexity (no collapse guard): {exc}")
            return []

    def evaluate_base(self) -> ModelRecord:
        """Round 0: the base model measured (once)."""
        recorded = self.model_record(0)
        if recorded is not None:
            return recorded
        started = time.monotonic()
        self.say(f"round 0: measuring the base model {self.base_model} on {len(self.items())} held-out items")
        model, tokenizer = self.base()
        with all_cores():
            evaluation, ppl = self._evaluate(model, tokenizer, 0)
        record = ModelRecord(round=0, dataset=self.loaded.recipe.name, base_model=self.base_model,
                             held_out=evaluation, perplexity=ppl, promoted=True, why="the base model",
                             seconds={"evaluate": round(time.monotonic() - started, 1)})
        self._write_card(record)
        self._write(record, "round0", "model.json")
        self.say(record.summary())
        return record

    def generator_of(self, record: ModelRecord) -> str:
        """What `generation.model` names for a round's model: the bundled base, or its GGUF as a local
        file (copied from an object store into the work folder once)."""
        if record.round == 0:
            return self.base_model
        place = self.models.child(f"round{record.round}", GGUF)
        local = place.local_path
        if local is not None:
            return str(local.resolve())
        target = self.work / f"round{record.round}.gguf"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")
            with place.open("rb") as source, open(tmp, "wb") as out:
                while chunk := source.read(1 << 22):
                    out.write(chunk)
            tmp.rename(target)
        return str(target)

    def round_recipe(self, k: int, current: ModelRecord) -> Path:
        """Round k's recipe: the recipe as written, reading the training seeds (in an order of their own
        for the round, so a capped round reaches other seeds than the last) and generating with the
        current model. Written to the local work folder; a copy goes beside the round's records."""
        split = self.split()
        usable = {seed.seed_id: seed for seed, _ in usable_seeds(self.loaded)}
        train = sorted((i for i in split.train if i in usable), key=lambda i: stable_hash(i, "round", k))
        folder = self.work / f"round{k}"
        folder.mkdir(parents=True, exist_ok=True)
        seeds_file = folder / "train_seeds.jsonl"
        seeds_file.write_text("".join(json.dumps(usable[i].fields, ensure_ascii=False) + "\n" for i in train),
                              encoding="utf-8")
        data = yaml.safe_load(self.loaded.path.read_text(encoding="utf-8"))
        data = absolute_paths(data, self.loaded.path.parent)
        data["seeds"] = {**data["seeds"], "path": str(seeds_file), "format": "jsonl"}
        data["generation"]["model"] = self.generator_of(current)
        if self.options.candidates is not None:
            data["batches"] = {**(data.get("batches") or {}), "max_candidates": self.options.candidates}
            data["batches"].pop("count", None)
        path = folder / f"{self.loaded.recipe.name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        self.models.child(f"round{k}", "recipe.yaml").write_text(path.read_text(encoding="utf-8"))
        return path

    def generate(self, k: int, current: ModelRecord) -> RoundRun:
        """Round k's run: a version of the dataset generated by the current model from training seeds."""
        from synthfactory.recipe import load_recipe
        from synthfactory.run.driver import run_recipe

        recorded = self.round_run(k)
        if recorded is not None:
            return recorded
        path = self.round_recipe(k, current)
        recipe_hash = load_recipe(path).recipe_hash
        started = time.monotonic()
        adopted = [v for v in self.dataset.versions() if v.metadata.recipe_hash == recipe_hash]
        if adopted:  # published before a kill, not yet recorded
            meta = adopted[-1].metadata
            run = RoundRun(round=k, version=adopted[-1].version, run_id=meta.run_id, recipe_hash=recipe_hash,
                           generated=meta.totals.generated, accepted=meta.totals.accepted)
        else:
            by = "the base model" if current.round == 0 else f"round {current.round}'s model"
            self.say(f"round {k}: generating with {by} ({self.dataset.uri})")
            try:
                summary = run_recipe(path, self.store)
            except NothingToPublishError as exc:
                run = RoundRun(round=k, recipe_hash=recipe_hash, not_published_because=str(exc).splitlines()[0],
                               seconds=round(time.monotonic() - started, 1))
            else:
                run = RoundRun(round=k, version=summary["version"], run_id=summary.get("run_id") or "",
                               recipe_hash=recipe_hash, generated=summary.get("generated") or 0,
                               accepted=summary.get("accepted") or 0, seconds=round(time.monotonic() - started, 1))
        self._write(run, f"round{k}", "run.json")
        self.say(f"round {k}: version {run.version} published {run.accepted} verified rows of {run.generated}"
                 if run.version is not None else f"round {k}: nothing published: {run.not_published_because}")
        return run

    def training_rows(self, k: int) -> tuple[list[dict[str, Any]], list[int], int]:
        """The verified rows of rounds 1..k as SFT chats (held-out seeds dropped, as a guard), the
        versions they came from, and how many distinct seeds."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from synthfactory.publish.formats import convert

        held = set(self.split().held_out)
        infos = {v.version: v for v in self.dataset.versions()}
        rows: list[dict[str, Any]] = []
        versions: list[int] = []
        seeds: set[str] = set()
        for j in range(1, k + 1):
            run = self.round_run(j)
            if run is None or run.version is None or run.version not in infos:
                continue
            table = self.dataset.rows_added_by(run.version)
            if "source" in table.column_names:
                table = table.filter(pc.equal(table["source"], "synthetic"))
            table = table.filter(pc.invert(pc.is_in(table["seed_id"], value_set=pa.array(
                sorted(held), type=table.schema.field("seed_id").type))))
            seeds.update(s for s in table.column("seed_id").to_pylist() if s)
            rows += convert(table, "messages", infos[run.version].metadata).to_pylist()
            versions.append(run.version)
        return rows, versions, len(seeds)

    def real_texts(self) -> list[str]:
        """The real text to mix in: the recipe's own (`seeds.real`) where it has some, else the
        corpus:python-docs paragraphs recipes read (never those the probes hold out); [] when neither."""
        from synthfactory.inputs.corpus import is_held_out, python_docs_paragraphs, python_docs_sources

        real = self.loaded.recipe.seeds.real
        if real is not None and "real" in self.loaded.files:
            from synthfactory.inputs.readers import read_texts

            texts = read_texts(self.loaded.files["real"], real.field, "seeds.real.path")
        else:
            sources = python_docs_sources()
            if sources is None:
                self.say("no real text to mix in: corpus:python-docs is not installed (make system-deps)")
                return []
            texts = python_docs_paragraphs(sources)
        return [t for t in texts if not is_held_out(t)]

    def real_rows(self, verified: int) -> list[dict[str, Any]]:
        """Real paragraphs as chats (the start of a paragraph asked, the rest answered), as many as make
        `real_mix` of the training examples."""
        share = self.options.real_mix
        want = round(verified * share / (1 - share)) if share else 0
        if want <= 0:
            return []
        paragraphs = [p for p in self.real_texts() if ". " in p[:400]]
        paragraphs.sort(key=lambda p: stable_hash(p, "improve real", self.options.seed))
        out = []
        for paragraph in paragraphs[:want]:
            head, tail = paragraph.split(". ", 1)
            out.append({"messages": [{"role": "user", "content": REAL_PROMPT + head + "."},
                                     {"role": "assistant", "content": tail}]})
        return out

    def train(self, k: int, current: ModelRecord) -> ModelRecord:
        """Round k's model: trained, measured, compared, stored; promoted or not, with why."""
        import torch

        from synthfactory.probe.train import FULL_LR, LORA_LR, fine_tune

        recorded = self.model_record(k)
        if recorded is not None:
            return recorded
        rows, versions, seeds = self.training_rows(k)
        if not rows:
            record = ModelRecord(round=k, dataset=self.loaded.recipe.name, base_model=self.base_model,
                                 generator=self.generator_of(current), promoted=False,
                                 why=f"no verified rows to train on after round {k}")
            self._write(record, f"round{k}", "model.json")
            return record
        real = self.real_rows(len(rows))
        examples = rows + real
        lora = (not torch.cuda.is_available()) if self.options.lora is None else self.options.lora
        steps = min(self.options.max_steps, max(1, math.ceil(self.options.epochs * len(examples)
                                                             / self.options.batch_size)))
        self.say(f"round {k}: training the base model on {len(rows)} verified rows of versions {versions}"
                 f" + {len(real)} real paragraphs, {steps} steps ({'LoRA' if lora else 'all weights'})")
        model, tokenizer = self.base()
        with all_cores():
            trained = fine_tune(model, tokenizer, examples, "sft", steps=steps, seed=self.options.seed, lora=lora,
                                batch_size=self.options.batch_size)
            started = time.monotonic()
            evaluation, ppl = self._evaluate(trained.model, tokenizer, k)
        evaluate_s = time.monotonic() - started
        paired = paired_test(current.held_out.per_item if current.held_out else [], evaluation.per_item,
                             against_round=current.round, seed=self.options.seed)
        promoted, why = self._decide(paired, ppl)
        started = time.monotonic()
        files = self._store_model(k, trained.model, tokenizer, lora)
        record = ModelRecord(
            round=k, dataset=self.loaded.recipe.name, base_model=self.base_model, generator=self.generator_of(current),
            trained_on_versions=versions, training_rows=len(rows), real_rows=len(real), training_seeds=seeds,
            steps=trained.steps, tokens=trained.tokens, lora=trained.lora, device=trained.device,
            learning_rate=LORA_LR if trained.lora else FULL_LR, held_out=evaluation, perplexity=ppl, paired=paired,
            promoted=promoted, why=why, files=files,
            seconds={"generate": (self.round_run(k) or RoundRun(round=k)).seconds, "train": round(trained.seconds, 1),
                     "evaluate": round(evaluate_s, 1), "export": round(time.monotonic() - started, 1)})
        self._write_card(record)
        self._write(record, f"round{k}", "model.json")
        self.say(record.summary())
        return record

    def _decide(self, paired: Any, ppl: Perplexity | None) -> tuple[bool, str]:
        lo, hi = paired.interval or [paired.delta, paired.delta]
        gain = (f"held-out pass@1 {paired.delta * 100:+.1f} pts over round {paired.against_round} "
                f"(95% CI {lo * 100:+.1f} to {hi * 100:+.1f}, p={paired.p_value})")
        if ppl is not None and ppl.relative > self.options.guard:
            return False, (f"collapse guard: real-text perplexity {ppl.relative:+.1%} over the base model "
                           f"(at most {self.options.guard:+.0%}); {gain}")
        if not paired.better:
            return False, f"not better beyond the noise: {gain}"
        return True, gain

    def _store_model(self, k: int, model: Any, tokenizer: Any, lora: bool) -> dict[str, str]:
        """The adapter (LoRA) or weights, and the GGUF the engine serves, under `_models/round{k}/`."""
        from synthfactory.engines.gguf_export import export_gguf, gguf_chat_template
        from synthfactory.engines.llamacpp import resolve_model_path

        template = None  # the tokenizer's own; read from the bundled GGUF only when it has none
        if not getattr(tokenizer, "chat_template", None):
            try:
                template = gguf_chat_template(resolve_model_path(self.base_model))
            except UserError:
                template = None
        with tempfile.TemporaryDirectory(prefix="sf-improve-") as tmp:
            folder = Path(tmp)
            kept = "adapter" if lora else "weights"
            model.save_pretrained(folder / kept)
            if not lora:
                tokenizer.save_pretrained(folder / kept)
            export_gguf(model, tokenizer, folder / GGUF, chat_template=template)
            self.models.child(f"round{k}").put_dir(folder)
        return {kept: f"round{k}/{kept}/", "gguf": f"round{k}/{GGUF}", "card": f"round{k}/README.md"}

    def _write_card(self, record: ModelRecord) -> None:
        from synthfactory.improve.card import model_card

        self.models.child(f"round{record.round}", "README.md").write_text(model_card(record, self))

    # the loop ------------------------------------------------------------------------------------------

    def run(self, rounds: int) -> list[ModelRecord]:
        """Rounds 1..`rounds` (those finished before are read, not redone); stops at the first round not
        promoted. Returns every round's record, round 0 first."""
        if rounds < 1:
            raise UserError(f"--rounds {rounds}: run at least 1 round")
        self.split()
        current = self.evaluate_base()
        stopped = ""
        for k in range(1, rounds + 1):
            record = self.model_record(k)
            if record is None:
                self.generate(k, current)
                record = self.train(k, current)
            if not record.promoted:
                stopped = stopped or (f"round {k} was not promoted: {record.why}"
                                      + ("; --keep-going ran the rounds after it" if self.options.keep_going else ""))
                if not self.options.keep_going:
                    break
                continue  # the next round generates with the current model still
            current = record
        done = len(self.records()) - 1
        self._write(LoopState(current_round=current.round, rounds_done=done, stopped_because=stopped), "loop.json")
        if stopped:
            self.say(f"the loop stopped: {stopped}")
        return self.records()


def options_for(size: str, **overrides: Any) -> LoopOptions:
    """A named size with the options given (None: the size's own)."""
    if size not in SIZES:
        raise UserError(f"--size {size!r}: choose one of {', '.join(SIZES)}")
    given = {k: v for k, v in overrides.items() if v is not None and k in asdict(SIZES[size])}
    return replace(SIZES[size], **given)


def read_models(uri: str) -> tuple[str, list[ModelRecord], LoopState]:
    """(uri, every round's model record, the loop's state) of the dataset at `uri`."""
    from synthfactory.storage import Location
    from synthfactory.store import DatasetStore

    dataset = DatasetStore(uri)
    folder: Location = dataset.root.child(MODELS_DIR)
    records = []
    k = 0
    while (place := folder.child(f"round{k}", "model.json")).exists():
        records.append(ModelRecord.model_validate_json(place.read_text()))
        k += 1
    state_file = folder.child("loop.json")
    state = LoopState.model_validate_json(state_file.read_text()) if state_file.exists() else LoopState()
    return dataset.uri, records, state
