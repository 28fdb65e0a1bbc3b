"""`synthfactory run RECIPE`: one recipe end to end, one new dataset version.

The one place the core starts a Prefect flow: `run` starts `flows.factory` (with `--no-prefect`, the
core's run driver runs the recipe itself, and Prefect is never imported). SIGTERM stops a run within
10 s and keeps its finished batches for the rerun (`synthfactory.cli.stop`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from synthfactory.cli.common import check_models, check_store
from synthfactory.cli.console import install_console_filter
from synthfactory.cli.progress_bar import ProgressBar
from synthfactory.cli.stop import SigtermGuard


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
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
    run.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from synthfactory.recipe import load_recipe
    from synthfactory.run.plan import check_seed_file, engine_specs_for

    loaded = load_recipe(args.recipe, batches=args.batches, batch_size=args.batch_size,
                         target_rows=args.target_rows)  # fail fast, exit 2
    check_models(engine_specs_for(loaded))
    check_seed_file(loaded)  # a verifier's seed field the seeds lack: exit 2 before Ray starts
    check_store(f"{args.store.rstrip('/')}/{loaded.recipe.name}", loaded.recipe)  # exit 1 before Ray starts

    def staging() -> Any:
        from synthfactory.store import DatasetStore

        return DatasetStore.for_run(args.store, loaded.recipe).staging_path

    from synthfactory.engines.session import local_cluster_lost

    with SigtermGuard(staging, lost=local_cluster_lost):
        summary = _run(args, loaded)
    _print_summary(summary, args.json)
    return 0


def _run(args: argparse.Namespace, loaded: Any) -> dict[str, Any]:
    from synthfactory.engines.session import ray_session

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
        run: Callable[..., dict[str, Any]]
        if args.no_prefect:
            run = _run_locally
        else:
            from flows.factory import factory_flow
            from flows.server import prefect_api

            stack.enter_context(prefect_api(server))

            def run(**parameters: Any) -> dict[str, Any]:
                return factory_flow(**parameters)
        if not args.debug:
            install_console_filter()  # Prefect's console handler exists once the flow module is imported
        with ProgressBar(enabled=not args.json and not args.debug and sys.stderr.isatty()) as listener:
            from synthfactory.run import progress

            with progress.listening(listener):
                return run(recipe_path=str(loaded.path), store=args.store, batches=args.batches,
                           batch_size=args.batch_size, target_rows=args.target_rows)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, default=str))
        return
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


def _warm_prefect(server: Any) -> None:
    """Warm-up, off the main thread: import the flow (Prefect ~1.7 s), then wait for the early API
    server to answer. Failures are the main thread's to report, when it needs these."""
    try:
        import flows.factory  # noqa: F401

        if server is not None:
            server.wait_ready(timeout_s=60)
    except Exception:
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
