"""Probe a published version: fine-tune the recipe's generator on the version's export, measure base
and tuned on the same held-out sets (perplexity; for a verified recipe, task accuracy on held-out
seeds), store the record beside the dataset and regenerate the card.

The base model's losses on an eval set, and its verified answers on a task set, are the same for
every probe of that base, so they are computed once per process (`compare` and repeated probes
reuse them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from synthfactory.errors import UserError
from synthfactory.model.probe import EvalResult, ProbeRecord, probe_fingerprint, write_probe
from synthfactory.probe.evalsets import REAL_TEXT_ITEMS, EvalSet, eval_sets
from synthfactory.probe.tasks import TASK_ACCURACY, TASK_ITEMS, TaskSet, task_set
from synthfactory.probe.train import FULL_LR, LORA_LR, training_examples

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int | None], None]  # (phase, done, total)
_BASE_LOSSES: dict[tuple[str, str], list[Any]] = {}
_BASE_RIGHT: dict[tuple[str, str], tuple[list[bool], list[str]]] = {}


def version_training_rows(store: Any, version: int | None) -> tuple[Any, str, list[dict[str, Any]]]:
    """(version info, layout, rows) of a version's export: `dpo` pairs for preference datasets,
    else `messages` chats (as `synthfactory export` writes them)."""
    from synthfactory.publish.formats import convert

    if not store.exists() or not store.versions():
        raise UserError(f"{store.uri}: no published dataset here (give STORE/NAME of a dataset a run published)")
    history = store.versions()
    number = version if version is not None else history[-1].version
    info = next((v for v in history if v.version == number), None)
    if info is None:
        raise UserError(f"{store.uri}: no version {number}; versions are {[v.version for v in history]}")
    table = store.read(number)
    layout = "dpo" if "chosen" in table.column_names else "sft"
    rows = convert(table, "dpo" if layout == "dpo" else "messages", info.metadata).to_pylist()
    return info, layout, rows


def losses_on(model: Any, tokenizer: Any, evalset: EvalSet, on_item: Callable[[], None] | None = None) -> list[Any]:
    from synthfactory.probe.evaluate import answer_losses, text_losses

    if evalset.texts:
        return text_losses(model, tokenizer, evalset.texts, on_item)
    return answer_losses(model, tokenizer, evalset.chats, on_item)


def _once(memo: dict[tuple[str, str], Any], key: tuple[str, str], items: int, compute: Callable[[], Any],
          on_item: Callable[[], None] | None) -> Any:
    """The base model's result for one set, computed once per process; a cached one still ticks the
    progress bar once per item."""
    if key not in memo:
        memo[key] = compute()
    elif on_item:
        for _ in range(items):
            on_item()
    return memo[key]


def _base_losses(base_key: str, model: Any, tokenizer: Any, evalset: EvalSet,
                 on_item: Callable[[], None] | None) -> list[Any]:
    return _once(_BASE_LOSSES, (base_key, evalset.key), len(evalset),
                 lambda: losses_on(model, tokenizer, evalset, on_item), on_item)


def answers_right(model: Any, tokenizer: Any, tasks: TaskSet,
                  on_item: Callable[[], None] | None = None) -> tuple[list[bool], list[str]]:
    """Per held-out seed: is the model's greedy answer right by every verifier of the recipe? And the
    verifier errors (answers that made a verifier raise: counted wrong, reported)."""
    from synthfactory.probe.tasks import generate_answers, verify_answers

    errors: list[str] = []
    right = verify_answers(tasks, generate_answers(model, tokenizer, tasks, on_item), errors)
    for error in errors:
        log.warning("probe: a verifier raised on an answer (counted wrong): %s", error)
    return right, errors


def _base_right(base_key: str, model: Any, tokenizer: Any, tasks: TaskSet,
                on_item: Callable[[], None] | None) -> tuple[list[bool], list[str]]:
    return _once(_BASE_RIGHT, (base_key, tasks.key), len(tasks),
                 lambda: answers_right(model, tokenizer, tasks, on_item), on_item)


def version_seed_ids(store: Any, version: int) -> set[str]:
    """The seeds the version's rows (its whole snapshot, what the probe trains on) came from."""
    return {s for s in store.read(version, columns=["seed_id"]).column("seed_id").to_pylist() if s}


def probe_version(uri: str, version: int | None = None, *, steps: int | None = 20, max_tokens: int | None = None,
                  seed: int = 0, model: str | None = None, lora: bool | None = None, batch_size: int = 2,
                  learning_rate: float | None = None, real_items: int = REAL_TEXT_ITEMS,
                  task_items: int = TASK_ITEMS, progress: Progress | None = None, write: bool = True,
                  card: bool = True, storage: Any = None) -> ProbeRecord:
    """Fine-tune the version's generator on its export and measure base vs tuned; the record is
    written to `{uri}/_probes/v{N}/{fingerprint}.json` and the version's card regenerated.
    `task_items`: held-out seeds for task accuracy (verified recipes; 0: off). `storage`: the
    StorageOptions reaching `uri` (a recipe's `storage_options`); default: the standard variables."""
    import torch

    from synthfactory.probe.evaluate import paired_accuracy, paired_bootstrap
    from synthfactory.probe.model import load_base_model, resolve_base_model
    from synthfactory.probe.train import fine_tune
    from synthfactory.store import DatasetStore

    started = time.monotonic()
    say = progress or (lambda phase, done, total: None)
    if (steps is None or steps <= 0) and (max_tokens is None or max_tokens <= 0):
        raise UserError("the probe's budget is 0: give --steps or --max-tokens above 0")
    if (steps is not None and steps <= 0) or (max_tokens is not None and max_tokens <= 0):
        raise UserError(f"the probe's budget must be above 0 (steps {steps}, max tokens {max_tokens})")
    if task_items < 0:
        raise UserError(f"--task-items {task_items}: give 0 (no task accuracy) or more held-out seeds")
    store = DatasetStore(uri, storage)
    info, layout, rows = version_training_rows(store, version)
    meta = info.metadata
    examples = training_examples(rows, layout)
    if not examples:
        needed = "dpo (preference pairs)" if layout == "dpo" else "messages (chats with an assistant answer)"
        raise UserError(f"{uri} v{info.version}: no rows in the {needed} layout to train on")
    source = resolve_base_model(model or meta.generator_model or (meta.recipe.get("generation") or {}).get("model"))
    sets, skipped = eval_sets(meta.recipe, real_items)
    tasks, why = task_set(meta.recipe, version_seed_ids(store, info.version), task_items)
    if why:
        skipped[TASK_ACCURACY] = why
    cuda = torch.cuda.is_available()
    use_lora = (not cuda) if lora is None else lora
    rate = learning_rate or (LORA_LR if use_lora else FULL_LR)
    fingerprint = probe_fingerprint(source.key, layout, steps, max_tokens, seed, use_lora, rate, batch_size,
                                    {**{s.name: s.key for s in sets}, **({tasks.name: tasks.key} if tasks else {})},
                                    task_items)

    say("loading base model", 0, None)
    base, tokenizer = load_base_model(source)
    total_items = sum(len(s) for s in sets) + (len(tasks) if tasks else 0)
    done = [0]

    def tick(phase: str) -> Callable[[], None]:
        def on_item() -> None:
            done[0] += 1
            say(phase, done[0], total_items)
        return on_item

    base_losses = {s.name: _base_losses(source.key, base, tokenizer, s, tick("evaluating base")) for s in sets}
    base_right, base_errors = (_base_right(source.key, base, tokenizer, tasks, tick("answering (base)")) if tasks
                               else ([], []))
    torch.manual_seed(seed)
    trained = fine_tune(base, tokenizer, rows, layout, steps=steps, max_tokens=max_tokens, seed=seed, lora=use_lora,
                        batch_size=batch_size, learning_rate=rate,
                        on_step=lambda step, total: say("training", step, total or None))
    done[0] = 0
    tuned_losses = {s.name: losses_on(trained.model, tokenizer, s, tick("evaluating tuned")) for s in sets}
    evals = [EvalResult(name=s.name, description=s.description,
                        **paired_bootstrap(base_losses[s.name], tuned_losses[s.name], seed=seed)) for s in sets]
    if tasks:
        tuned_right, tuned_errors = answers_right(trained.model, tokenizer, tasks, tick("answering (tuned)"))
        evals.append(EvalResult(name=tasks.name, description=tasks.description,
                                verifier_errors=[len(base_errors), len(tuned_errors)],
                                **paired_accuracy(base_right, tuned_right, seed=seed)))
    record = ProbeRecord(
        fingerprint=fingerprint, dataset=meta.dataset or store.root.name, version=info.version,
        base_model=source.name, base_key=source.key, layout=layout, rows=len(examples), steps_budget=steps,
        max_tokens=max_tokens, seed=seed, lora=trained.lora, device=trained.device, learning_rate=rate,
        batch_size=batch_size, steps=trained.steps, tokens=trained.tokens, train_seconds=round(trained.seconds, 2),
        wall_seconds=round(time.monotonic() - started, 2), evals=evals, skipped=skipped)
    if write:
        say("recording", 0, None)
        write_probe(store, record)
        if card:
            from synthfactory.publish.card import write_card

            write_card(store, info.version)
    return record


def compare_versions(uri: str, a: int, b: int, **options: Any) -> tuple[ProbeRecord, ProbeRecord]:
    """The same probe (base, budget, seed, evaluation) of versions `a` and `b`; both recorded, and the
    later version's card plots every version this probe measured."""
    if a == b:
        raise UserError(f"--compare needs two different versions, not {a} twice")
    first = probe_version(uri, a, **options)
    second = probe_version(uri, b, **options)
    return first, second
