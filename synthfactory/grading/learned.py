"""The learned judge (`method: learned`): few labels from people -> a cheap classifier over every row.

The FineWeb-Edu pattern: it reads signals the factory already computes for a row (feature groups):
- `embeddings`: all-MiniLM-L6-v2 vectors of prompt and response (the relevance judge's model);
- `signals`: their cosine, the form signals (ends a sentence, repetition, refusal), the repeated
  3-gram ratio, length in characters, words and sentences;
- `judges`: every other judge of the panel, its score and each criterion (e.g. the LLM's P(yes)).
- `generator` (opt-in): the response's token log-probabilities under the recipe's llama.cpp
  generator (mean and 10th percentile), from a second pass of the model over prompt and response
  in this process (~0.1-0.4 s a row on CPU). On the real quickstart set it is the strongest signal
  (bench/learned_judge.py).

It runs after the panel's other judges for the same items (panel.py). It is trained on the rows of
`labels` (whose other-judge scores the panel computes the same way), the first time it grades, and
stored beside the calibration: `{dataset}/_calibration/{judges fingerprint}/learned/{fingerprint}/`
with `model.json` (plain numbers) and `cv.json` (its nested cross-validation and, when the labels
name several labellers, its figures across labellers (`cross_labeller`): the worse is the one to cite).
The fingerprint hashes the labels' content, the feature spec, the classifier grid and the other
judges, so the same labels give the same model and the same fingerprint; a stored model whose
fingerprint matches is loaded instead of trained.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthfactory.errors import UserError
from synthfactory.grading import learned_model as lm
from synthfactory.grading.cross_labeller import cross_labeller, labeller_counts
from synthfactory.grading.cross_labeller import summary as cross_summary
from synthfactory.grading.llm import SCORE_COLUMNS, JudgeScore
from synthfactory.model.lineage import stable_hash
from synthfactory.quality import text as tq
from synthfactory.storage import Location

FEATURE_GROUPS = ("embeddings", "signals", "judges", "generator")
DEFAULT_GROUPS = ("embeddings", "signals", "judges")
SPEC_VERSION = 2  # 2: cv.json carries the cross-labeller figures (a model stored without them is trained again)
CALIBRATION_DIR = "_calibration"  # as grading.calibration (which imports this module for its report)
LEARNED_DIR = "learned"
MODEL_FILE = "model.json"
CV_FILE = "cv.json"
log = logging.getLogger(__name__)
_SENTENCE_END = re.compile(r"[.!?](\s|$)")
_TRAINED: dict[str, tuple[lm.LinearModel, dict[str, Any]]] = {}  # per process, by fingerprint
_TRAIN_LOCK = threading.Lock()

GradeOthers = Callable[[list[tuple[str, str]]], dict[str, list[JudgeScore | None]]]


# -- labels ------------------------------------------------------------------------------------
def labels_path(config: Any) -> Path:
    """Where a learned judge's `labels` are: resolved by load_recipe, else as written."""
    resolved = getattr(config, "_labels_path", None)
    return Path(resolved) if resolved is not None else Path(str(config.labels).removeprefix("file://"))


def load_training_rows(config: Any) -> list[dict[str, Any]]:
    """The labelled rows (prompt, text, good) a learned judge trains on: a JSONL/Parquet file, or a
    dataset's labels table once calibration can read one. A bad value is one UserError line."""
    path = labels_path(config)
    from synthfactory.grading.labelsets import load_label_source

    try:
        labels = load_label_source(path)
    except UserError as exc:
        raise UserError(f"grading.judges {config.name}.labels: {exc}") from None
    if labels.quarantined:
        log.warning("learned judge %s: %d labelled lines quarantined (first: %s: %s)", config.name,
                    len(labels.quarantined), labels.quarantined[0].location, labels.quarantined[0].reason)
    return labels.rows


def labels_digest(rows: list[dict[str, Any]]) -> str:
    """Content of the labelled rows (order-free): what the model is trained on, and whose label each
    row carries (the cross-labeller figures depend on it)."""
    return stable_hash("labels", sorted((r["prompt"], r["text"], bool(r["good"]), r.get("labeller") or "")
                                        for r in rows))


# -- features ----------------------------------------------------------------------------------
def groups_of(config: Any) -> tuple[str, ...]:
    return tuple(g for g in FEATURE_GROUPS if g in (config.features or DEFAULT_GROUPS))


class GeneratorScorer:
    """The response's token log-probabilities under the generator (llama.cpp; the prompt laid out by
    the model's own chat template, ChatML when it has none), one model per process and model,
    loaded on first use; cached by text."""

    _shared: dict[str, GeneratorScorer] = {}
    _shared_lock = threading.Lock()

    def __init__(self, model: str, system: str | None) -> None:
        self.model, self.system = model, system
        self._llm: Any = None
        self._lock = threading.Lock()
        self._cache: dict[str, list[float]] = {}

    @classmethod
    def shared(cls, model: str, system: str | None) -> GeneratorScorer:
        with cls._shared_lock:
            key = stable_hash(model, system)
            if key not in cls._shared:
                cls._shared[key] = cls(model, system)
            return cls._shared[key]

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            from synthfactory.engines.llamacpp import resolve_model_path

            self._llm = Llama(model_path=str(resolve_model_path(self.model)), n_ctx=2048, n_threads=1,
                              n_threads_batch=1, logits_all=True, verbose=False)
        return self._llm

    def prefix(self, prompt: str) -> str:
        """System and user turns and the assistant's opening, as the generator saw them."""
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": prompt}]
        template = self._load().metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            return Jinja2ChatFormatter(template, eos_token="", bos_token="")(messages=messages).prompt
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + \
            "<|im_start|>assistant\n"

    def features(self, prompt: str, response: str) -> list[float]:
        """[mean, 10th percentile] of the response tokens' log-probabilities given the prompt."""
        key = stable_hash(prompt, response)
        with self._lock:
            if key not in self._cache:
                llm = self._load()
                head = llm.tokenize(self.prefix(prompt).encode(), add_bos=False, special=True)
                body = llm.tokenize(response.encode(), add_bos=False, special=False)[:max(1, 2000 - len(head))]
                llm.reset()
                llm.eval(head + body)
                logits = np.asarray(llm.scores[len(head) - 1:len(head) + len(body) - 1], dtype=np.float64)
                top = logits.max(axis=1, keepdims=True)
                logsoft = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
                values = logsoft[np.arange(len(body)), body]
                self._cache[key] = [float(values.mean()), float(np.percentile(values, 10))]
            return self._cache[key]


def generator_of(config: Any) -> GeneratorScorer | None:
    """The scorer of a learned judge that reads `generator` features (load_recipe names the model)."""
    if "generator" not in groups_of(config):
        return None
    given = getattr(config, "_generator", None)
    if given is None:
        raise UserError(f"grading.judges {config.name}.features: generator needs the recipe's llama.cpp generator "
                        "(load the recipe with load_recipe)")
    return GeneratorScorer.shared(*given)


def signal_features(response: str, cosine: float) -> dict[str, float]:
    """The text signals of one response (form judge's, repetition, length) and prompt-response cosine."""
    from synthfactory.grading.signals import FormJudge

    tokens = tq.words(response)
    form = FormJudge.one(response).raw
    return {"signal.cosine": cosine, "signal.complete": form["complete"],
            "signal.no_repetition": form["no_repetition"], "signal.no_refusal": form["no_refusal"],
            "signal.repeated_3grams": tq.repeated_ngram_ratio(tokens),
            "signal.log_chars": math.log1p(len(response)), "signal.log_words": math.log1p(len(tokens)),
            "signal.sentences": float(len(_SENTENCE_END.findall(response)))}


def judge_features(name: str, score: JudgeScore) -> dict[str, float]:
    """One other judge's score and criteria (an LLM's P(yes) per criterion)."""
    out = {f"judge.{name}": float(score.score)}
    out.update({f"judge.{name}.{k}": float(v) for k, v in sorted(score.normalised.items())
                if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return out


def build_features(pairs: list[tuple[str, str]], others: dict[str, list[JudgeScore | None]],
                   groups: tuple[str, ...], embedder: Callable[[], Any] | None,
                   generator: GeneratorScorer | None = None) -> lm.FeatureTable:
    """The feature table of (prompt, response) pairs whose other judges all scored them."""
    vectors = None
    if {"embeddings", "signals"} & set(groups) and pairs:
        assert embedder is not None, "the embeddings and signals groups need an embedder"
        texts = [t for pair in pairs for t in pair]
        vectors = embedder().encode([stable_hash("relevance", t) for t in texts], texts)  # shared with relevance
    rows: list[dict[str, float]] = []
    for k, (_, response) in enumerate(pairs):
        row: dict[str, float] = {}
        if "signals" in groups:
            assert vectors is not None  # encoded above: there are pairs
            row.update(signal_features(response, float(vectors[2 * k] @ vectors[2 * k + 1])))
        if "judges" in groups:
            for name in sorted(others):
                score = others[name][k]
                assert score is not None, "features are built only for pairs every other judge scored"
                row.update(judge_features(name, score))
        if "generator" in groups and generator is not None:
            mean, low = generator.features(*pairs[k])
            row.update({"generator.mean_logprob": mean, "generator.p10_logprob": low})
        rows.append(row)
    names = sorted({n for row in rows for n in row})
    scalars = np.array([[row.get(n, 0.0) for n in names] for row in rows], dtype=np.float64).reshape(len(rows), -1)
    embeddings = None
    if "embeddings" in groups:
        embeddings = (np.hstack([vectors[0::2], vectors[1::2]]).astype(np.float64) if vectors is not None
                      else np.zeros((0, 768)))  # None only without pairs
    return lm.FeatureTable(names, scalars, embeddings)


# -- the judge ---------------------------------------------------------------------------------
def others_description(grading: Any, config: Any) -> list[dict[str, Any]]:
    """The judges whose scores are features: what decides them (the fingerprint hashes it)."""
    return [c.model_dump(mode="json", exclude={"weight"}) for c in grading.panel
            if c.name != config.name and c.method != "learned"]


def judges_fingerprint(grading: Any) -> str:
    """The calibration folder's name: grading.calibration.fingerprint (a test keeps the two equal)."""
    return stable_hash("judge", grading.model_dump(mode="json", exclude={"threshold", "max_attempts"}), length=12)


def model_fingerprint(config: Any, grading: Any, rows: list[dict[str, Any]] | None = None) -> str:
    """Labels' content + feature spec + classifier grid + the other judges: same inputs, same model."""
    rows = load_training_rows(config) if rows is None else rows
    spec = {"version": SPEC_VERSION, "groups": groups_of(config), "grid_c": lm.GRID_C, "grid_dims": lm.GRID_DIMS,
            "folds": lm.FOLDS, "inner_folds": lm.INNER_FOLDS, "seed": lm.SEED, "embedder": "all-MiniLM-L6-v2",
            "others": others_description(grading, config) if "judges" in groups_of(config) else [],
            "generator": list(getattr(config, "_generator", None) or []) if "generator" in groups_of(config) else None}
    return stable_hash("learned", labels_digest(rows), spec, length=12)


def stored_summary(dataset_uri: str | Location, grading: Any, model: str | None) -> dict[str, Any] | None:
    """A stored learned model's cross-validated numbers at the grading's current threshold, for the
    version's metadata and card (`model`: `learned:{fingerprint}` as `model_of` names it); None when
    it is not a learned model of this store."""
    from synthfactory.grading.measures import at_threshold, with_intervals

    if not model or not model.startswith("learned:"):
        return None
    path = Location.of(dataset_uri).child(CALIBRATION_DIR, judges_fingerprint(grading), LEARNED_DIR,
                                          model.removeprefix("learned:"), CV_FILE)
    try:
        cv = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    labels = cv.get("labels") or {}
    summary = {"measured_on": "out-of-fold scores of nested stratified cross-validation on its labelled rows",
               "labels": labels.get("path"), "origins": labels.get("origins"), "rows": cv.get("rows"),
               "good": cv.get("good"), "auc": cv.get("auc"), "features": cv.get("groups"),
               "labellers": labels.get("labellers"),
               "cross_labeller": cross_summary(cv.get("cross_labeller"), grading.pass_mark)}
    oof, good = cv.get("oof_scores") or [], cv.get("oof_good") or []
    if oof and len(oof) == len(good):
        summary["at_threshold"] = with_intervals(at_threshold(good, oof, grading.pass_mark))
    return summary


class LearnedJudge:
    criteria = ("p_good",)
    columns = SCORE_COLUMNS

    @classmethod
    def for_panel(cls, grading: Any, embedder: Callable[[], Any]) -> LearnedJudge:
        raise UserError("a learned judge grades in a panel that gives it its config (grading.judges)")

    @classmethod
    def for_learning(cls, config: Any, grading: Any, embedder: Callable[[], Any],
                     dataset_uri: Any = None) -> LearnedJudge:
        return cls(config, grading, embedder, dataset_uri)

    @staticmethod
    def model_of(judge: Any, recipe: Any) -> str | None:
        """`learned:{fingerprint}`: names the exact model in the version's metadata and card."""
        return f"learned:{model_fingerprint(judge, recipe.grading)}"

    def __init__(self, config: Any, grading: Any, embedder: Callable[[], Any], dataset_uri: Any) -> None:
        self.config, self.grading, self._embedder, self.dataset_uri = config, grading, embedder, dataset_uri
        self.groups = groups_of(config)
        self.generator = generator_of(config)
        self.model: lm.LinearModel | None = None
        self.cv: dict[str, Any] | None = None
        self.fingerprint: str | None = None
        self._lock = threading.Lock()

    def folder(self, fingerprint: str) -> Location | None:
        """Beside the calibration of these judges, on the dataset's store; None without a dataset."""
        if self.dataset_uri is None or self.dataset_uri == "":
            return None
        return Location.of(self.dataset_uri).child(CALIBRATION_DIR, judges_fingerprint(self.grading), LEARNED_DIR,
                                                   fingerprint)

    def ensure_model(self, grade_others: GradeOthers) -> None:
        """Load the stored model of this fingerprint, or train one on the labels (one log line) and store it."""
        with self._lock:
            if self.model is not None:
                return
            rows = load_training_rows(self.config)
            fingerprint = model_fingerprint(self.config, self.grading, rows)
            folder = self.folder(fingerprint)
            with _TRAIN_LOCK:
                if fingerprint in _TRAINED:
                    self.model, self.cv = _TRAINED[fingerprint]
                elif (stored := load(folder)) is not None:
                    self.model, self.cv = stored
                else:
                    log.info("learned judge %s: training on %d labelled rows (%s), fingerprint %s",
                             self.config.name, len(rows), labels_path(self.config).name, fingerprint)
                    self.model, self.cv = self.train(rows, grade_others, fingerprint)
                    if folder is not None:
                        save(folder, self.model, self.cv)
                _TRAINED[fingerprint] = (self.model, self.cv)
            self.fingerprint = fingerprint

    def train(self, rows: list[dict[str, Any]], grade_others: GradeOthers, fingerprint: str
              ) -> tuple[lm.LinearModel, dict[str, Any]]:
        pairs = [(r["prompt"], r["text"]) for r in rows]
        others = grade_others(pairs) if "judges" in self.groups else {}
        readable = [k for k in range(len(rows)) if all(v[k] is not None for v in others.values())]
        table = build_features([pairs[k] for k in readable], {n: [v[k] for k in readable] for n, v in others.items()},
                               self.groups, self._embedder, self.generator)
        good = np.array([bool(rows[k]["good"]) for k in readable])
        try:
            model, cv = lm.train(table, good, self.grading.pass_mark)
        except ValueError as exc:
            raise UserError(f"grading.judges {self.config.name}: cannot train on {labels_path(self.config)}: {exc}"
                            ) from None
        origins = sorted({str(rows[k].get("origin") or rows[k].get("source") or "unknown") for k in readable})
        labellers = [rows[k].get("labeller") for k in readable]
        cv["cross_labeller"] = cross_labeller(table, good, labellers, self.grading.pass_mark)
        cv.update({"fingerprint": fingerprint, "judge": self.config.name, "groups": list(self.groups),
                   "labels": {"path": labels_path(self.config).name, "digest": labels_digest(rows),
                              "rows": len(rows), "origins": origins, "labellers": labeller_counts(labellers, good)},
                   "unreadable_by_other_judges": len(rows) - len(readable), "features": table.names})
        return model, cv

    def grade_with(self, pairs: list[tuple[str, str]], others: dict[str, list[JudgeScore | None]]
                   ) -> list[JudgeScore | None]:
        """P(good) per item, given the other judges' scores of the same items (None where one had none)."""
        assert self.model is not None, "ensure_model first"
        readable = [k for k in range(len(pairs)) if all(v[k] is not None for v in others.values())]
        out: list[JudgeScore | None] = [None] * len(pairs)
        if not readable:
            return out
        table = build_features([pairs[k] for k in readable],
                               {n: [v[k] for k in readable] for n, v in others.items()} if "judges" in self.groups
                               else {}, self.groups, self._embedder, self.generator)
        for k, p in zip(readable, self.model.scores(table), strict=True):
            value = round(float(p), 6)
            out[k] = JudgeScore(raw={"p_good": value}, normalised={"p_good": value}, score=value)
        return out


def load(folder: Location | None) -> tuple[lm.LinearModel, dict[str, Any]] | None:
    """The model and its cross-validation stored in `folder`, or None if none is (wholly) there."""
    if folder is None:
        return None
    try:
        model = lm.LinearModel.from_json(folder.child(MODEL_FILE).read_text())
        return model, json.loads(folder.child(CV_FILE).read_text())
    except FileNotFoundError:
        return None


def save(folder: Location | Path, model: lm.LinearModel, cv: dict[str, Any]) -> Location:
    """cv.json, then model.json (what `load` looks for first), each written whole before it is
    visible (another process may save the same model meanwhile: same content)."""
    folder = Location.of(folder)
    folder.child(CV_FILE).write_text(json.dumps(cv, indent=2, sort_keys=True, default=str) + "\n")
    folder.child(MODEL_FILE).write_text(model.to_json())
    return folder


def learned_report(panel: Any, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """For `calibrate`: each learned judge's cross-validated numbers (the quality figure), precision
    and recall at the recipe's current threshold from its out-of-fold scores. `rows`: the labelled
    rows the calibration measured; when any of them trained the judge, the calibration's own AUC
    and precision of this judge (and of an aggregate it votes in) are partly a training fit:
    `training_overlap` counts them and `note` says so (a version's card then does not state them as
    the precision a person would see). `cross_labeller`: its figures across labellers, when its
    labels name several."""
    from synthfactory.grading.measures import at_threshold

    out = []
    for judge in getattr(panel, "judges", []):
        if isinstance(judge, LearnedJudge) and judge.cv is not None:
            cv = {k: v for k, v in judge.cv.items() if k not in ("oof_scores", "at_threshold", "features")}
            cv["cross_labeller"] = cross_summary(judge.cv.get("cross_labeller"), panel.grading.pass_mark)
            oof = judge.cv.get("oof_scores") or []
            good = judge.cv.get("oof_good") or []
            if oof and len(good) == len(oof):
                cv["at_threshold"] = at_threshold(good, oof, panel.grading.pass_mark)
            entry = {"judge": judge.config.name, "fingerprint": judge.fingerprint, **cv}
            if rows is not None:
                trained = {stable_hash(r["prompt"], r["text"]) for r in load_training_rows(judge.config)}
                entry["training_overlap"] = sum(stable_hash(r["prompt"], r["text"]) in trained for r in rows)
                if entry["training_overlap"]:
                    entry["note"] = (f"{entry['training_overlap']} of these {len(rows)} labelled rows trained this "
                                     "judge: the calibration's numbers for it (and for an aggregate it votes in) are "
                                     "partly a training fit; its quality is the cross-validated auc here")
            out.append(entry)
    return out
