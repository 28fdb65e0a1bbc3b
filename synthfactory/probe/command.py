"""`synthfactory probe STORE/NAME`: fine-tune the generator on a version and print what it did, or
`--compare A B`: the same probe on two versions, side by side."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from synthfactory.errors import UserError
from synthfactory.probe.tasks import TASK_ITEMS


class _Bar:
    """A rich progress bar on stderr for the probe's phases (loading, evaluating, training)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), transient=True, console=Console(stderr=True))
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=phase, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


def _options(args: argparse.Namespace) -> dict[str, Any]:
    if args.steps is not None and args.steps <= 0 and not (args.max_tokens and args.max_tokens > 0):
        raise UserError(f"--steps {args.steps}: the probe's budget must be above 0")
    if args.max_tokens is not None and args.max_tokens <= 0:
        raise UserError(f"--max-tokens {args.max_tokens}: the probe's budget must be above 0")
    if args.task_items < 0:
        raise UserError(f"--task-items {args.task_items}: give 0 (no task accuracy) or more held-out seeds")
    steps = args.steps if args.steps is not None else (None if args.max_tokens else 20)
    return {"steps": steps, "max_tokens": args.max_tokens, "seed": args.seed, "model": args.model,
            "real_items": args.real_items, "task_items": args.task_items}


def _value(e: Any, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if e.metric == "accuracy" else f"{value:.4g}"


def _relative(e: Any) -> str:
    """The change: relative for perplexity, in percentage points for task accuracy."""
    if e.metric == "accuracy":
        ci = e.delta_interval
        return "-" if e.delta is None else (f"{e.delta * 100:+.0f} pts"
                                            + (f" [{ci[0] * 100:+.0f}, {ci[1] * 100:+.0f}]" if ci else ""))
    ci = e.relative_interval
    return "-" if e.relative is None else f"{e.relative:+.1%}" + (f" [{ci[0]:+.1%}, {ci[1]:+.1%}]" if ci else "")


def _compare_table(a: Any, b: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"{a.dataset}: probe {a.fingerprint} ({a.base_model}, {a.steps}/{b.steps} steps, "
                        f"seed {a.seed})")
    table.add_column("evaluation")
    table.add_column("base", justify="right")
    for record in (a, b):
        table.add_column(f"v{record.version} tuned", justify="right")
        table.add_column(f"v{record.version} change (95% CI)", justify="right")
    for name in [e.name for e in a.evals]:
        ea, eb = a.eval(name), b.eval(name)
        cells = [name, _value(ea, ea.base)]
        for e in (ea, eb):
            cells += [_value(e, e.tuned) if e else "-", _relative(e) if e else "-"]
        table.add_row(*cells)
    table.add_row("training tokens", "", str(a.tokens), "", str(b.tokens), "")
    return table


def _quiet_libraries() -> None:
    """The bar and the summary are the output: no per-step logs, dataset bars or deprecation notes."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|peft)\.")
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:
        pass


def probe_command(args: argparse.Namespace) -> int:
    from synthfactory.probe.run import compare_versions, probe_version

    options = _options(args)
    _quiet_libraries()
    if args.compare and args.version is not None:
        raise UserError("give --version or --compare A B, not both")
    with _Bar(enabled=not args.json and sys.stderr.isatty()) as bar:
        if args.compare:
            records = list(compare_versions(args.dataset, args.compare[0], args.compare[1], progress=bar, **options))
        else:
            records = [probe_version(args.dataset, args.version, progress=bar, **options)]
    if args.json:
        out = [r.model_dump(mode="json") for r in records]
        print(json.dumps(out if args.compare else out[0]))
        return 0
    if args.compare:
        from rich.console import Console

        Console().print(_compare_table(*records))
    for record in records:
        print(record.summary())
    return 0


def add_probe_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `probe` subcommand (cli.py adds it with one line)."""
    probe = sub.add_parser("probe", parents=[common],
                           help="fine-tune the generator on a version and measure base vs tuned "
                                "(perplexity, task accuracy)")
    probe.add_argument("dataset", help="STORE/NAME of a published dataset")
    probe.add_argument("--version", type=int, default=None, help="the version to probe (default: the latest)")
    probe.add_argument("--steps", type=int, default=None, help="optimizer steps (default 20; batch 2)")
    probe.add_argument("--max-tokens", type=int, default=None, help="stop after this many training tokens")
    probe.add_argument("--seed", type=int, default=0, help="seed of data order and adapters (default 0)")
    probe.add_argument("--model", default=None,
                       help="base model instead of the version's generator (bundled name, .gguf or HF folder)")
    probe.add_argument("--compare", type=int, nargs=2, metavar=("A", "B"), default=None,
                       help="the same probe on versions A and B, side by side")
    probe.add_argument("--real-items", type=int, default=32,
                       help="held-out corpus:python-docs paragraphs for real-text perplexity (default 32; 0: none)")
    probe.add_argument("--task-items", type=int, default=TASK_ITEMS,
                       help="held-out seeds of a verified recipe (math, code) answered by base and tuned and "
                            "checked by its verifiers: task accuracy (default 8; 0: none)")
    probe.add_argument("--json", action="store_true", help="print the probe record (or both, with --compare) as JSON")
    probe.set_defaults(func=probe_command)
