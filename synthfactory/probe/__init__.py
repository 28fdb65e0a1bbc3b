"""Probe a version: fine-tune the recipe's generator on it and measure what that does to a model
(real-text perplexity, answer perplexity on labelled good answers, and for a verified recipe task
accuracy on held-out seeds), base vs tuned in one run.

The API other code calls (light to import; torch, transformers and TRL load on first use):
- `load_base_model(name_or_path)` -> (model, tokenizer): plain, trainable, a fresh copy per call;
- `fine_tune(model, tokenizer, rows, layout, steps=, max_tokens=, seed=)` -> `TrainResult`;
- `text_losses` / `answer_losses` / `perplexity` / `paired_bootstrap` (`evaluate`);
- `real_text_eval()` / `good_answers_eval()` (`evalsets`): the held-out sets;
- `task_set(recipe, seed_ids)` / `generate_answers` / `verify_answers` (`tasks`): task accuracy;
- `probe_version(uri, version, steps=, seed=)` -> `ProbeRecord` (written, card regenerated);
- `read_probes(store, version)`: the records beside a dataset.
"""

from synthfactory.model.probe import EvalResult, ProbeRecord, read_probes, write_probe
from synthfactory.probe.evalsets import EvalSet, good_answers_eval, real_text_eval

__all__ = ["EvalResult", "EvalSet", "ProbeRecord", "compare_versions", "fine_tune", "good_answers_eval",
           "load_base_model", "paired_bootstrap", "perplexity", "probe_version", "read_probes", "real_text_eval",
           "text_losses", "answer_losses", "write_probe"]


def __getattr__(name: str):  # the heavy parts on first use, so `import synthfactory.probe` stays light
    if name in ("probe_version", "compare_versions", "version_training_rows"):
        from synthfactory.probe import run

        return getattr(run, name)
    if name in ("fine_tune", "TrainResult", "training_examples"):
        from synthfactory.probe import train

        return getattr(train, name)
    if name in ("load_base_model", "resolve_base_model"):
        from synthfactory.probe import model

        return getattr(model, name)
    if name in ("text_losses", "answer_losses", "perplexity", "paired_bootstrap", "ItemLoss"):
        from synthfactory.probe import evaluate

        return getattr(evaluate, name)
    raise AttributeError(name)
