"""`synthfactory` command line: run a recipe; calibrate its judge; list, show, diff, export and push versions.

The only place the core touches Prefect: `run` starts the flow in `flows/` (with `--no-prefect`,
the core's run driver runs the recipe itself, and Prefect is never imported).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

from synthfactory.errors import SynthfactoryError, UserError


def _run(args: argparse.Namespace) -> int:
    from synthfactory.engines.session import ray_session
    from synthfactory.run.plan import check_seed_file, engine_specs_for
    from synthfactory.recipe import load_recipe

    loaded = load_recipe(args.recipe, batches=args.batches, batch_size=args.batch_size,
                         target_rows=args.target_rows)  # fail fast, exit 2
    _check_models(engine_specs_for(loaded))
    check_seed_file(loaded)  # a verifier's seed field the seeds lack: exit 2 before Ray starts
    _check_store(f"{args.store.rstrip('/')}/{loaded.recipe.name}", loaded.recipe)  # exit 1 before Ray starts
    server = None
    if args.no_prefect:  # the core's driver on the local executor: Prefect is never imported
        logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:  # Prefect's temporary API server, if the run will need one, starts first (its own process)
        from flows.server import start_early_server

        server = start_early_server()

    # The flow's heavy imports (Prefect, GX ~2.5 s, sentence-transformers ~4.5 s) run in threads while
    # Ray starts and the API server comes up (both mostly other processes); Ray from the main thread:
    # started in a task thread, its shutdown blocks ~15 s. The flow starts once Prefect is imported
    # and its API answers; the GX and model imports go on meanwhile (the run's first use of each
    # waits for its import to finish).
    quality = loaded.recipe.quality
    threading.Thread(target=_import_flow_libraries, args=(quality.enabled and quality.embeddings,),
                     daemon=True).start()
    warm_up = threading.Thread(target=_warm_prefect, args=(server,), daemon=True)
    if not args.no_prefect:
        warm_up.start()
    with ray_session(quiet=not args.debug), ExitStack() as stack:
        if warm_up.is_alive():
            warm_up.join()
        if args.no_prefect:
            run = _run_locally
        else:
            from flows.factory import factory_flow
            from flows.server import prefect_api

            stack.enter_context(prefect_api(server))

            def run(**parameters: Any) -> dict[str, Any]:
                return factory_flow(**parameters)
        if not args.debug:
            _install_console_filter()  # Prefect's console handler exists once the flow module is imported
        with _ProgressBar(enabled=not args.json and not args.debug and sys.stderr.isatty()) as listener:
            from synthfactory.run import progress

            with progress.listening(listener):
                summary = run(recipe_path=str(loaded.path), store=args.store, batches=args.batches,
                              batch_size=args.batch_size, target_rows=args.target_rows)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        first = summary.get("first_batch_seconds")
        print(
            f"{summary['dataset']} version {summary['version']}: generated {summary['generated']}, "
            f"accepted {summary['accepted']}, rejected {summary['rejected']}, quarantined {summary['quarantined']} "
            f"({summary['seeds_quarantined']} seed rows quarantined) in {summary['seconds']:.1f}s"
            + (f" (first accepted batch at {first:.1f}s)" if first is not None else "")
        )
        from synthfactory.model.cost import Cost
        from synthfactory.model.metadata import StopRecord

        print(f"  {StopRecord.model_validate(summary).sentence(summary['batches']).replace('`', '')}")
        print(f"  cost: {Cost.model_validate(summary.get('cost') or {}).line()}")
    return 0


class _ProgressBar:
    """A rich progress bar fed by `synthfactory.run.progress`: accepted of target rows (with a target)
    or batches done of planned, rows accepted per second, and the ETA rich estimates from them."""

    LABELS = {"engines": "starting engines", "batches": "generating", "publishing": "publishing", "done": "done"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._since: float | None = None

    def __enter__(self):
        if not self.enabled:
            return lambda update: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[unit]} · {task.fields[rate]}"), TimeElapsedColumn(),
                             TextColumn("ETA"), TimeRemainingColumn(), transient=True, redirect_stderr=False)
        self._bar.start()
        self._task = self._bar.add_task("starting engines", total=None, unit="", rate="")
        return self.update

    def update(self, update: Any) -> None:
        self._bar.update(self._task, description=self.LABELS.get(update.phase, update.phase), **self.fields(update))

    def fields(self, update: Any) -> dict[str, Any]:
        """What the bar shows for one update (kept apart from rich, so it can be checked)."""
        if update.phase == "batches" and self._since is None:
            self._since = time.monotonic()
        elapsed = time.monotonic() - self._since if self._since is not None else 0.0
        rate = f"{update.accepted / elapsed:.2f} rows/s" if elapsed > 0 and update.accepted else "- rows/s"
        if update.target:
            return {"total": update.target, "completed": min(update.accepted, update.target),
                    "unit": "rows accepted", "rate": rate}
        return {"total": update.batches_total or None, "completed": update.batches_done,
                "unit": f"batches · {update.accepted} rows accepted", "rate": rate}

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


def _check_store(uri: str, recipe: Any = None) -> None:
    """Reach an object store once, before any work: a wrong key, endpoint or bucket is one line and
    exit 1 in seconds, not a failure after the engines started (`synthfactory.storage.check`)."""
    from synthfactory.storage import is_remote

    if is_remote(uri):
        from synthfactory.storage import storage_options
        from synthfactory.storage.check import check_store

        check_store(uri, storage_options(uri, getattr(recipe, "storage_options", None)))


def _warm_prefect(server: Any) -> None:
    """Warm-up, off the main thread: import the flow (Prefect ~1.7 s), then wait for the early API
    server to answer. Failures are the main thread's to report, when it needs these."""
    try:
        import flows.factory  # noqa: F401

        if server is not None:
            server.wait_ready(timeout_s=60)
    except Exception:  # noqa: BLE001 - reported where the run needs the import or the server
        pass


def _import_flow_libraries(embeddings: bool) -> None:
    """Warm-up, off the main thread: import what the flow will need (GX ~2.5 s,
    sentence-transformers ~4.5 s; otherwise on the path to the first batch)."""
    import great_expectations  # noqa: F401

    if embeddings:
        import sentence_transformers  # noqa: F401


def _run_locally(recipe_path: str, **parameters: Any) -> dict[str, Any]:
    """`run --no-prefect`: the core's run driver on its local executor (threads, no Prefect)."""
    from synthfactory.run.driver import run_recipe

    return run_recipe(recipe_path, **parameters)


def _calibrate_verifier(args: argparse.Namespace, loaded: Any) -> int:
    """`calibrate --verifier NAME`: the threshold of a `grounded` check from labelled rows that carry `source`."""
    from synthfactory.grading.calibration import load_labels
    from synthfactory.verify.grounded import GroundedVerifier, calibrate_threshold

    entry = next((v for v in loaded.recipe.verification if v.name == args.verifier), None)
    if entry is None or entry.method != "grounded":
        raise UserError(f"--verifier {args.verifier}: not a grounded check of {args.recipe} (only grounded has a "
                        "threshold to calibrate)")
    verifier = GroundedVerifier(GroundedVerifier.Options(**entry.options))
    report = calibrate_threshold(verifier, load_labels(args.labels).rows, args.target_precision)
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    at, wanted = report["at_threshold"], report["threshold_for_target_precision"]
    print(f"verifier {entry.name} on {report['rows']} labelled rows ({report['good']} good; {report['no_source']} "
          f"without source; {report['item_failures']} fail an item check at any threshold)")
    print(f"  at threshold {at['threshold']:.4g}: precision {_num(at['precision'])}, recall {_num(at['recall'])}")
    print(f"  precision >= {args.target_precision}: " + (
        f"options.threshold {wanted['threshold']:.4g} (precision {wanted['precision']:.3f}, recall "
        f"{wanted['recall']:.3f})" if wanted else "no threshold reaches it"))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    """Grade labelled rows with the recipe's judges and write the report, scores and plots."""
    from synthfactory.grading.calibration import (calibration_folder, calibration_panel, grade_labels,
                                                  learned_section, load_label_source, report_for, write_calibration)
    from synthfactory.grading.cross_labeller import lines as cross_labeller_lines
    from synthfactory.run.plan import judge_specs
    from synthfactory.recipe import load_recipe
    from synthfactory.store import DatasetStore

    if not 0.0 < args.target_precision <= 1.0:
        raise UserError("--target-precision must be in (0, 1]")
    loaded = load_recipe(args.recipe)
    if args.verifier:
        return _calibrate_verifier(args, loaded)
    grading = loaded.recipe.grading
    if grading is None:
        raise UserError(f"{args.recipe}: no grading section (verification alone keeps its rows): no judge to calibrate")
    _check_store(f"{args.store.rstrip('/')}/{loaded.recipe.name}", loaded.recipe)
    labels = load_label_source(args.labels)
    rows = labels.rows
    store = DatasetStore.for_run(args.store, loaded.recipe)
    panel = calibration_panel(grading, store.root)
    _, specs = judge_specs(loaded)
    engines = list({s.key: s for s in specs if s is not None}.values())
    _check_models(engines)
    from contextlib import nullcontext

    from synthfactory.engines.session import engine_session

    with (engine_session(engines, quiet=not args.debug) if engines else nullcontext()) as pool:
        chats = [(lambda requests, spec=spec: pool.chat(spec, requests)) if spec is not None else None
                 for spec in specs]
        graded = grade_labels(rows, grading, chats, workers=len(pool.replicas) if pool else 1,
                              seed=loaded.recipe.generation.sampling.seed, panel=panel)
    report = report_for(graded, grading, args.target_precision, labels, loaded.recipe.name,
                        learned=learned_section(panel, rows))
    folder = write_calibration(calibration_folder(store.root, grading), report, graded)
    if args.json:
        print(json.dumps({**report, "folder": str(folder)}, default=str))
        return 0
    at, wanted = report["at_recipe_threshold"], report["threshold_for_target_precision"]
    print(f"judge {report['fingerprint']} on {report['labels']['rows']} labelled rows "
          f"({report['labels']['good']} good, {report['labels']['bad']} bad; {report['unreadable']} unreadable; "
          f"{report['labels']['quarantined']} lines quarantined)")
    for bad in report["labels"]["quarantined_rows"][:5]:
        print(f"  quarantined {bad['location']}: {bad['reason']}")
    for pair in report["labels"].get("agreement", []):
        print(f"  labellers {' and '.join(pair['labellers'])} agree on {pair['rows'] - pair['disagreements']} of "
              f"{pair['rows']} rows they share (Cohen's kappa {_num(pair['kappa'])})")
    if report["labels"].get("skipped"):
        print(f"  {report['labels']['skipped']} labels were skip (not counted)")
    origins = ", ".join(f"{n} {o}" for o, n in report["labels"]["origins"].items())
    on_all = f"on all {report['labels']['rows'] - report['unreadable']} labelled rows ({origins})"
    print(f"  ROC-AUC {_num(report['auc'])} ({_interval(report['auc_interval'])}) {on_all}")
    print(f"  at the recipe's threshold {at['threshold']:.4g} {on_all}: accuracy {_num(at['accuracy'])}, precision "
          f"{_num(at['precision'])} ({_interval(at['precision_interval'])}; {at['true_positives']} good of "
          f"{at['accepted']} accepted), recall {_num(at['recall'])} ({_interval(at['recall_interval'])}), "
          f"F1 {_num(at['f1'])}, kappa {_num(at['kappa'])}")
    for origin, m in report["by_origin"].items():
        rows_named = {"real": "labelled real rows (a model's outputs, labelled against a rubric)",
                      "constructed": "constructed rows (built by corruption, not a model's outputs)",
                      "unknown": "labelled rows of unknown origin"}[origin]
        print(f"  on {m['rows']} {rows_named}: base rate {_num(m['base_rate'])}, ROC-AUC {_num(m['auc'])} "
              f"({_interval(m['auc_interval'])}); at {at['threshold']:.4g} precision {_num(m['precision'])} "
              f"({_interval(m['precision_interval'])}; {m['true_positives']} good of {m['accepted']} accepted), "
              f"recall {_num(m['recall'])} ({_interval(m['recall_interval'])})")
    if wanted:
        print(f"  precision >= {args.target_precision}: threshold {wanted['threshold']:.4g} "
              f"(precision {wanted['precision']:.3f}, recall {wanted['recall']:.3f})")
    else:
        print(f"  no threshold reaches precision {args.target_precision}")
    for title, values in (("per criterion", report["auc_per_criterion"]), ("per judge", report["auc_per_judge"]),
                          ("per kind of bad row", report["auc_per_kind"])):
        if values:
            print(f"  AUC {title}: " + ", ".join(f"{k} {_num(v)}" for k, v in values.items()))
    print(f"  score vs response length (Spearman): {_num(report['verbosity_spearman'])}")
    for learned in report.get("learned") or []:
        print(f"  learned judge {learned.get('judge')} (cross-validated, not its training fit): " + ", ".join(
            f"{k} {_num(v) if isinstance(v, float) else v}" for k, v in learned.items()
            if k != "judge" and (isinstance(v, (int, float, str)) or v is None)))
        for line in cross_labeller_lines(learned.get("cross_labeller")):
            print(f"    {line}")
    print(f"report, per-row scores, ROC and calibration plots: {folder}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    """A few of the plan's rows through every stage on the real engines, then an estimate of the
    whole run; the store is read, never written."""
    from synthfactory.model.cost import Prices
    from synthfactory.run.plan import engine_specs_for
    from synthfactory.run.preview import estimate, outcome_rows, plan_for_preview, preview_items, run_preview
    from synthfactory.quality.guards import QualityGuards
    from synthfactory.recipe import load_recipe
    from synthfactory.store import DatasetStore

    loaded = load_recipe(args.recipe, target_rows=args.target_rows)
    specs = engine_specs_for(loaded)
    _check_models(specs)
    _check_store(f"{args.store.rstrip('/')}/{loaded.recipe.name}", loaded.recipe)
    store = DatasetStore.for_run(args.store, loaded.recipe)
    guards = QualityGuards.for_run(loaded, store.index_path, store.embeddings_path)
    plan = plan_for_preview(loaded, store, guards)
    batch = preview_items(plan, args.rows)
    from synthfactory.engines.session import engine_session

    with engine_session(specs, quiet=not args.debug) as pool:
        state = run_preview(loaded, plan, batch, guards, pool.chat)
        replicas = len(pool.replicas)
    rows = outcome_rows(batch, state)
    validation = state.validation or {}
    suite = {"outcome": state.status, "failed_expectations": validation.get("failed_expectations", [])}
    guess = estimate(plan, batch, state, Prices.from_card(loaded.recipe.card), replicas,
                     loaded.recipe.batches.target_rows)
    if args.json:
        print(json.dumps({"recipe": loaded.recipe.name, "rows": rows, "suite": suite, "estimate": guess},
                         default=str, ensure_ascii=False))
        return 0
    print(f"preview of {loaded.recipe.name}: {len(batch.items)} of the {plan.candidates} rows the next run plans "
          f"(spread over its seeds), through every stage on the real engines; nothing written")
    for n, row in enumerate(rows, 1):
        print(f"\n[{n}] seed: {row['seed']}")
        print(f"    prompt: {_clip(row['prompt'], 200)}")
        print(f"    output: {_clip(row['output'], 300)}")
        if row["scores"] is not None:
            print(f"    scores: {_scores_line(row['scores'])} -> {_num(row['score'])}")
        print("    outcome: " + ("accepted" if row["outcome"] == "accepted" else
                                 f"{row['outcome']} at {row['stage']}: {row['reason']}"))
    failed = ", ".join(suite["failed_expectations"])
    print(f"\nsuite {loaded.suite_path.name} on these {len(batch.items)} rows: {suite['outcome']}"
          + (f" (failed: {failed})" if failed else "")
          + (f"; the run's batches hold {loaded.recipe.batches.size} rows, which its set-level expectations "
             "judge" if len(batch.items) < loaded.recipe.batches.size else ""))
    print(_estimate_text(guess))
    return 0


def _clip(text: Any, limit: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _scores_line(scores: dict[str, Any]) -> str:
    """`judge score (criterion grade, ...)` per judge of a panel, or `criterion grade` per criterion."""
    parts = []
    for name, value in scores.items():
        if isinstance(value, dict):
            grades = ", ".join(f"{k} {_num(v)}" for k, v in value.items() if k != "score")
            parts.append(f"{name} {_num(value.get('score'))}" + (f" ({grades})" if grades else ""))
        else:
            parts.append(f"{name} {_num(value)}")
    return "; ".join(parts)


def _estimate_text(e: dict[str, Any]) -> str:
    from synthfactory.model.cost import NO_PRICE, money_text

    low, high = e["acceptance_interval"]
    lines = [f"\nestimate from {e['accepted']} of {e['previewed']} rows passing screen, judge and filter "
             f"(acceptance estimate {e['acceptance_rate']:.2f}, 95% interval {low:.2f}-{high:.2f}):"]
    c_low, c_high = e["candidates_interval"]
    if e["target_rows"] is not None:
        lines.append(f"  {e['target_rows']} rows need about {_num(e['candidates'])} candidates "
                     f"(interval {_num(c_low)}-{_num(c_high)}); the seeds give {e['candidates_in_plan']}"
                     + (" - fewer than needed: add seeds or samples_per_seed" if e["short_of_target"] else ""))
    else:
        r_low, r_high = e["rows_interval"]
        lines.append(f"  the full recipe generates {e['candidates']} candidates: about {e['rows']} rows pass "
                     f"(interval {r_low}-{r_high})")
    money = ", " + money_text(e.get("money"), e["currency"], missing="money " + NO_PRICE)
    lines.append(f"  about {_num(e['tokens'])} tokens, {_num(e['engine_seconds'])} engine-seconds{money}, "
                 f"{_num(e['wall_seconds'])} s of wall time on {e['replicas']} replicas (after the engines load)")
    lines.append(f"  per accepted row: {_num(e['engine_seconds_per_accepted_row'])} engine-seconds")
    return "\n".join(lines)


def _check_models(specs: list[Any]) -> None:
    """A bundled-model name or .gguf path that does not resolve is the user's to fix (exit 2)."""
    for spec in specs:
        spec.backend.check_model(spec.model)


def _version_row(info: Any) -> dict[str, Any]:
    """One version as `versions --json` lists it."""
    from synthfactory.model.cost import PerRow

    meta, cost = info.metadata, info.metadata.cost
    per_accepted, per_rejected = cost.per_accepted_row or PerRow(), cost.per_rejected_row or PerRow()
    return {
        "version": info.version, "rows": info.rows, "created": info.created.isoformat(timespec="seconds"),
        "run_id": meta.run_id, "accepted": meta.totals.accepted, "rejected": meta.totals.rejected,
        "quarantined": meta.totals.quarantined, "stopped": meta.stop.stopped,
        "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
        "engine_seconds": cost.engine_seconds, "money": cost.money, "currency": cost.currency,
        "tokens_per_accepted_row": per_accepted.tokens,
        "engine_seconds_per_accepted_row": per_accepted.engine_seconds,
        "money_per_accepted_row": per_accepted.money,
        "tokens_per_rejected_row": per_rejected.tokens,
        "engine_seconds_per_rejected_row": per_rejected.engine_seconds,
        "money_per_rejected_row": per_rejected.money,
        "verify_pass_rates": {name: v.rate for name, v in meta.verification.items()},
    }


def _versions(args: argparse.Namespace) -> int:
    from synthfactory.model.cost import PerRow, money_text
    from synthfactory.store import DatasetStore

    infos = DatasetStore(args.dataset).versions()
    if not infos:
        raise UserError(f"{args.dataset}: no published dataset here (run a recipe first)")
    if args.json:
        print(json.dumps([_version_row(v) for v in infos]))
        return 0
    header = (f"{'version':>7} {'rows':>6} {'created':<25} {'run id':<32} {'accepted':>8} {'quarant.':>8} "
              f"{'stopped':<15} {'tokens':>8} {'engine s':>9} {'money':>10} {'tok/row':>8} {'eng s/row':>9} "
              f"{'money/row':>10}")
    print(header)
    for info in infos:
        meta, cost = info.metadata, info.metadata.cost
        per = cost.per_accepted_row or PerRow()
        print(f"{info.version:>7} {info.rows:>6} {info.created.isoformat(timespec='seconds'):<25} {meta.run_id:<32} "
              f"{meta.totals.accepted:>8} {meta.totals.quarantined:>8} {meta.stop.stopped or '-':<15} "
              f"{cost.tokens:>8} {_num(cost.engine_seconds):>9} {money_text(cost.money, None, 4, '-'):>10} "
              f"{_num(per.tokens):>8} {_num(per.engine_seconds):>9} {money_text(per.money, None, 6, '-'):>10}")
    print("(per row: the run's whole spend over the rows it published; money only where the recipe's card "
          "gives a price)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from synthfactory.store import DatasetStore

    table = DatasetStore(args.dataset).read(args.version)
    for row in table.slice(0, args.limit).to_pylist():
        print(json.dumps({k: row[k] for k in ("id", "seed_id", "score", "prompt", "text")}, ensure_ascii=False,
                         default=str))
    print(f"({table.num_rows} rows in this version)", file=sys.stderr)
    return 0


def _version_or_latest(dataset: str, version: int | None) -> int:
    """--version, or the newest published version when it is omitted (as load_dataset_version does)."""
    if version is not None:
        return version
    from synthfactory.store import DatasetStore

    published = DatasetStore(dataset).versions()
    if not published:
        raise UserError(f"{dataset}: no published dataset here (run a recipe first)")
    return published[-1].version


def _export(args: argparse.Namespace) -> int:
    from synthfactory.publish.hub import export_version

    args.version = _version_or_latest(args.dataset, args.version)
    folder = export_version(args.dataset, args.version, args.to, fmt=args.format)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    print(f"exported {args.dataset} version {args.version} to {folder}: {', '.join(files)}")
    print(f"load it with: datasets.load_dataset({str(folder)!r})")
    return 0


def _push(args: argparse.Namespace) -> int:
    import tempfile

    from synthfactory.publish.hub import plan_push, push

    args.version = _version_or_latest(args.dataset, args.version)
    with tempfile.TemporaryDirectory(prefix="synthfactory-push-") as tmp:
        plan = plan_push(args.dataset, args.version, args.repo, Path(tmp) / "export", private=args.private,
                         fmt=args.format)
        print(f"{'would push' if args.dry_run else 'pushing'} {args.dataset} version {args.version} to "
              f"datasets/{plan.repo_id} ({'private' if plan.private else 'public'}) in one commit, tag {plan.tag}:")
        for name in plan.files:
            print(f"  add {name}")
        print("  delete every other file in the repo but .gitattributes (older data files would be read too)")
        print(f"  message: {plan.commit_message}")
        if args.dry_run:
            return 0
        print(push(plan, force=args.force))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from synthfactory.publish.hub import diff_versions

    result = diff_versions(args.dataset, args.a, args.b)
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    print(f"{result['dataset']}: version {args.a} ({result['rows_a']} rows) -> version {args.b} "
          f"({result['rows_b']} rows): {result['rows_added']} rows added, {result['rows_removed']} removed")
    for key, values in result["metrics"].items():
        delta = values["delta"]
        print(f"  {key:<36} {_num(values['a']):>10} -> {_num(values['b']):>10}"
              + (f"  ({delta:+.4g})" if isinstance(delta, (int, float)) else ""))
    drift = result["drift_frechet"]
    print(f"  drift (Frechet distance of the rows each version added): {_num(drift)}")
    return 0


def _interval(interval: list[float] | None) -> str:
    return f"95% CI {interval[0]:.3f}-{interval[1]:.3f}" if interval else "95% CI n/a"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthfactory", description="Synthetic training-data factory.")
    parser.add_argument("--debug", action="store_true",
                        help="show every log line and the full traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    run = sub.add_parser("run", parents=[common], help="run a recipe end to end and publish a new dataset version")
    run.add_argument("recipe")
    run.add_argument("--store", default="store", help="folder or object-store URI holding datasets (default ./store)")
    run.add_argument("--batches", type=int, default=None, help="number of batches (overrides batches.count)")
    run.add_argument("--batch-size", type=int, default=None, help="rows per batch (overrides batches.size)")
    run.add_argument("--target-rows", type=int, default=None,
                     help="run until N rows passed and publish exactly N (overrides batches.target_rows)")
    run.add_argument("--json", action="store_true", help="print one JSON summary object last")
    run.add_argument("--no-prefect", action="store_true",
                     help="run in this process on the core's local executor, with no Prefect server or UI "
                          "(same rows, resume, locks, target and budgets)")
    run.set_defaults(func=_run)
    preview = sub.add_parser("preview", parents=[common],
                             help="a few rows through every stage, and an estimate of the run; writes nothing")
    preview.add_argument("recipe")
    preview.add_argument("--rows", type=int, default=5, help="how many of the plan's rows to preview (default 5)")
    preview.add_argument("--target-rows", type=int, default=None,
                         help="estimate a run to N accepted rows (default the recipe's batches.target_rows)")
    preview.add_argument("--store", default="store", help="the store the run would publish to (read, not written)")
    preview.add_argument("--json", action="store_true", help="print one JSON object: rows, suite, estimate")
    preview.set_defaults(func=_preview)
    versions = sub.add_parser("versions", parents=[common], help="list the published versions of a dataset")
    versions.add_argument("dataset", help="DIR/NAME")
    versions.add_argument("--json", action="store_true")
    versions.set_defaults(func=_versions)
    show = sub.add_parser("show", parents=[common], help="print rows of a version")
    show.add_argument("dataset", help="DIR/NAME")
    show.add_argument("--version", type=int, default=None)
    show.add_argument("--limit", type=int, default=5)
    show.set_defaults(func=_show)
    export = sub.add_parser("export", parents=[common], help="write a version as a Hugging Face Hub dataset folder")
    export.add_argument("dataset", help="DIR/NAME")
    export.add_argument("--version", type=int, default=None, help="default: the latest version")
    export.add_argument("--to", type=Path, required=True, help="output folder (card, plots, data/*.parquet)")
    export.add_argument("--format", default="hub",  # checked by synthfactory.publish.formats.convert (one-line error)
                        help="hub (every column), jsonl, messages (SFT), sharegpt, dpo (preference pairs)")
    export.set_defaults(func=_export)
    push = sub.add_parser("push", parents=[common], help="upload a version to the Hub in one commit and tag it vN")
    push.add_argument("dataset", help="DIR/NAME")
    push.add_argument("--version", type=int, default=None, help="default: the latest version")
    push.add_argument("--repo", required=True, help="ORG/NAME of the Hub dataset repo")
    push.add_argument("--format", default="hub", help="the layout, as for export")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--dry-run", action="store_true", help="print what would be committed; no network")
    push.add_argument("--force", action="store_true",
                      help="push a version older than the repo's newest vN tag (moves main back)")
    push.set_defaults(func=_push)
    diff = sub.add_parser("diff", parents=[common], help="rows added/removed, metric deltas and drift between two versions")
    diff.add_argument("dataset", help="DIR/NAME")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=_diff)
    calibrate = sub.add_parser("calibrate", parents=[common],
                               help="measure the recipe's judges against labelled rows (ROC-AUC, kappa, threshold)")
    calibrate.add_argument("recipe")
    calibrate.add_argument("--labels", required=True,
                           help="JSONL or Parquet with prompt, text, label (good/bad) and origin (real/constructed), "
                                "or a dataset STORE/NAME whose labels table `synthfactory label` wrote")
    calibrate.add_argument("--target-precision", type=float, default=0.8,
                           help="report the lowest threshold whose accepted rows are this precise (default 0.8)")
    calibrate.add_argument("--store", default="store",
                           help="the report goes to STORE/NAME/_calibration/FINGERPRINT/ (default ./store)")
    calibrate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    calibrate.add_argument("--verifier", metavar="NAME",
                           help="pick the threshold of the recipe's grounded check NAME instead (labels need source)")
    calibrate.set_defaults(func=_calibrate)
    label = sub.add_parser("label", parents=[common],
                           help="label rows of a dataset good/bad in a page on 127.0.0.1 (or via Label Studio)")
    label.add_argument("dataset", help="STORE/NAME")
    label.add_argument("--version", type=int, default=None, help="default: the latest version")
    label.add_argument("--rows", type=int, default=50, help="how many rows to sample (default 50)")
    label.add_argument("--who", default=None, help="the labeller's name (default: the OS user)")
    label.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    label.add_argument("--export-label-studio", type=Path, metavar="FILE",
                       help="write the sample as Label Studio import JSON instead of serving the page")
    label.add_argument("--import-label-studio", type=Path, metavar="FILE",
                       help="read a Label Studio JSON export into the labels table")
    label.add_argument("--json", action="store_true")
    label.set_defaults(func=_label)
    doctor = sub.add_parser("doctor", parents=[common],
                            help="check that the llama.cpp build runs on this CPU, and the vLLM engine environment")
    doctor.add_argument("--model", default="smollm2-135m-instruct", help="bundled model name or .gguf path")
    doctor.add_argument("--no-generate", action="store_true", help="only report the build, generate nothing")
    doctor.add_argument("--engine", choices=["llamacpp", "vllm"], default="llamacpp",
                        help="which engine generates the one-token check (vllm: loads the model, about a minute)")
    doctor.add_argument("--quiet", action="store_true", help="one line")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=_doctor)
    from synthfactory.probe.command import add_probe_parser  # `synthfactory probe` (light: torch loads on use)

    add_probe_parser(sub, common)
    from synthfactory.verify.seeds_check import add_seeds_parser  # `synthfactory seeds check` (light: loads on use)

    add_seeds_parser(sub, common)
    return parser


def _label(args: argparse.Namespace) -> int:
    """`synthfactory label STORE/NAME`: the labelling page, or Label Studio export/import (`synthfactory.labels`)."""
    from synthfactory.labels.command import label_command

    return label_command(args)


def _doctor(args: argparse.Namespace) -> int:
    """What the llama.cpp build is, how the engine loads models with it, and whether one token
    can be generated on this CPU (`synthfactory.engines.doctor`)."""
    from synthfactory.engines.doctor import check_failure, llamacpp_report, vllm_report

    report = llamacpp_report(args.model, generate=not args.no_generate and args.engine == "llamacpp")
    check = report["start_check"]
    vllm = None if args.quiet else vllm_report(args.model if args.engine == "vllm" and not args.no_generate else None)
    if args.json:
        print(json.dumps({**report, "vllm": vllm}))
    elif args.quiet:
        print(f"llama.cpp {report['llama_cpp_python']}: {' '.join(report['features'])}; extra buffer types "
              f"{'on' if report['use_extra_bufts'] else 'off'}" + ("" if check is None else
                                                                  f"; one-token check {'ok' if check['ok'] else 'FAILED'}"))
    else:
        print(f"llama-cpp-python {report['llama_cpp_python']}\n  build: {report['system_info']}")
        print(f"  CPU features beyond AVX2 compiled in: {', '.join(report['non_portable']) or 'none (portable)'}")
        print(f"  AMX in the build: {'yes: models load with extra buffer types off' if report['amx'] else 'no'}")
        print(f"  model params the engine passes: use_extra_bufts={report['use_extra_bufts']}")
        if check is not None:
            print(f"  one-token generation on {args.model}: {'ok' if check['ok'] else 'FAILED: ' + check['detail']}")
        print(f"  sandbox for generated code: {report['sandbox']}")
        print(_vllm_lines(vllm, args.model))
    failure = check_failure(report, args.model)
    if failure is not None:
        raise failure
    if args.engine == "vllm" and not (vllm and vllm.get("ok")):
        from synthfactory.errors import EngineFailure

        raise EngineFailure(f"the vLLM engine environment cannot generate: {(vllm or {}).get('detail', 'not checked')}")
    return 0


def _vllm_lines(vllm: dict[str, Any], model: str) -> str:
    """The vLLM engine environment as `doctor` prints it."""
    if not vllm["found"]:
        return f"vLLM engine environment: none ({vllm['detail']})"
    if not vllm["ok"]:
        return f"vLLM engine environment: {vllm['python']}\n  FAILED: {vllm['detail']}"
    lines = [f"vLLM engine environment: {vllm['python']}",
             f"  package: {vllm['package']} {vllm['version']} (vllm {vllm['vllm']}), device: {vllm['device']}"]
    if "start_check" in vllm:
        lines.append(f"  one-token generation on {model}: ok (loaded in {vllm['load_seconds']}s)")
    return "\n".join(lines)


def quiet_console(debug: bool) -> None:
    """What a user sees while a run works: warnings, not Prefect's INFO lines (those go to the
    Prefect API and UI), and no tracebacks: the CLI prints the failure's cause as one line.
    Set before Prefect is imported (its logging reads these at import)."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "DEBUG" if debug else "WARNING")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # GX's usage statistics: DNS failures offline
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # the temporary server's telemetry
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:  # the console handler's own filter is added once Prefect created it
        for name in ("great_expectations", "ray", "sentence_transformers", "transformers", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _NoTracebacks(logging.Filter):
    """Failures are reported once, by the CLI, as one line: drop Prefect's own failure records
    (they carry the traceback) and the traceback of any other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.name.startswith("prefect"):
            return False
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def _install_console_filter() -> None:
    """On the console handler itself (a filter on the root logger misses propagated records).
    Ray's driver prints every raylet error (a dead worker's notice, a paragraph) from a thread
    with no switch to turn it off: the CLI reports the engine's cause itself, so those go too."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NoTracebacks) for f in handler.filters):
            handler.addFilter(_NoTracebacks())
    import ray._private.worker as ray_worker

    printer = ray_worker.print_to_stdstream

    def print_but_raylet_errors(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            printer(data, ignore_prefix)

    ray_worker.print_to_stdstream = print_but_raylet_errors


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("batches", "batch_size", "limit", "target_rows", "rows"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            print(f"synthfactory: error: --{flag.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    quiet_console(args.debug)
    # At exit, skip the interpreter's last full garbage collection of everything a run imported
    # (Prefect, GX, Ray, pandas: ~3 s): the objects are freed with the process. atexit, not here, so
    # a caller that runs `main` in process (tests) keeps collecting until it exits.
    atexit.register(gc.freeze)
    try:
        if getattr(args, "dataset", None):  # versions, show, export, push, diff, label, probe: STORE/NAME
            _check_store(str(args.dataset))
        return args.func(args)
    except SynthfactoryError as exc:
        if args.debug:
            raise
        print(f"synthfactory: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("synthfactory: error: interrupted; a rerun resumes from the finished batches", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line unless asked for the traceback
        if args.debug:
            raise
        print(f"synthfactory: error: internal error ({type(exc).__name__}: {_one_line(exc)}); "
              "run again with --debug for the traceback", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
