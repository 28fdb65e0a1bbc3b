"""`synthfactory` command line: run a recipe; list, show, diff, export and push versions.

The only place the core touches Prefect: `run` starts the flow in `flows/`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from synthfactory.errors import UserError, ValidationGateError


def _run(args: argparse.Namespace) -> int:
    from synthfactory.engines.llamacpp import resolve_model_path
    from synthfactory.recipe import load_recipe

    loaded = load_recipe(args.recipe, batches=args.batches, batch_size=args.batch_size)  # fail fast, exit 2
    for engine, model in ((loaded.recipe.generation.engine, loaded.recipe.generation.model),
                          (loaded.recipe.grading.engine, loaded.recipe.grading.model)):
        if (engine or "llamacpp") == "llamacpp" and model:
            resolve_model_path(model)
    from flows.factory import factory_flow
    from synthfactory.pool import ensure_ray

    # Prefect's API (a temporary server unless PREFECT_API_URL is set) and the flow's heavy imports
    # start while Ray starts, each in its own thread (the server and Ray are mostly other processes);
    # Ray from the main thread: started in a task thread, its shutdown blocks ~15 s.
    quality = loaded.recipe.quality
    warm_ups = [threading.Thread(target=_connect_prefect, daemon=True),
                threading.Thread(target=_import_flow_libraries, args=(quality.enabled and quality.embeddings,),
                                 daemon=True)]
    for thread in warm_ups:
        thread.start()
    ensure_ray()
    for thread in warm_ups:
        thread.join()
    try:
        summary = factory_flow(recipe_path=str(loaded.path), store=args.store, batches=args.batches,
                               batch_size=args.batch_size)
    finally:
        _stop_ray()
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        print(
            f"{summary['dataset']} version {summary['version']}: generated {summary['generated']}, "
            f"accepted {summary['accepted']}, rejected {summary['rejected']}, quarantined {summary['quarantined']} "
            f"({summary['seeds_quarantined']} seed rows quarantined) in {summary['seconds']:.1f}s"
        )
    return 0


def _connect_prefect() -> None:
    """Warm-up, off the main thread: reach Prefect's API (starts the temporary server, ~5 s)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.api_healthcheck()


def _import_flow_libraries(embeddings: bool) -> None:
    """Warm-up, off the main thread: import what the flow will need (GX ~2.5 s,
    sentence-transformers ~4.5 s; otherwise on the path to the first batch)."""
    import great_expectations  # noqa: F401

    if embeddings:
        import sentence_transformers  # noqa: F401


def _stop_ray() -> None:
    """Stop the local Ray processes this command started (or leave the cluster it joined) now:
    left to exit hooks, Ray's agents outlive the command and hold its output pipes open."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _version_row(info: Any) -> dict[str, Any]:
    meta = info.metadata
    return {
        "version": info.version, "rows": info.rows, "created": info.created.isoformat(timespec="seconds"),
        "run_id": meta.get("run_id"), "accepted": meta.get("accepted"), "rejected": meta.get("rejected"),
        "quarantined": meta.get("quarantined"), "prompt_tokens": meta.get("cost", {}).get("prompt_tokens"),
        "completion_tokens": meta.get("cost", {}).get("completion_tokens"),
        "engine_seconds": meta.get("cost", {}).get("engine_seconds"),
    }


def _versions(args: argparse.Namespace) -> int:
    from synthfactory.store import DatasetStore

    store = DatasetStore(args.dataset)
    rows = [_version_row(v) for v in store.versions()]
    if not rows:
        raise UserError(f"{args.dataset}: no published dataset here (run a recipe first)")
    if args.json:
        print(json.dumps(rows))
        return 0
    header = f"{'version':>7} {'rows':>6} {'created':<25} {'run id':<32} {'accepted':>8} {'quarant.':>8} {'tokens':>8} {'engine s':>9}"
    print(header)
    for r in rows:
        tokens = (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
        print(f"{r['version']:>7} {r['rows']:>6} {r['created']:<25} {r['run_id']:<32} {r['accepted']:>8} "
              f"{r['quarantined']:>8} {tokens:>8} {r['engine_seconds']:>9}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from synthfactory.store import DatasetStore

    table = DatasetStore(args.dataset).read(args.version)
    for row in table.slice(0, args.limit).to_pylist():
        print(json.dumps({k: row[k] for k in ("id", "seed_id", "score", "prompt", "text")}, ensure_ascii=False,
                         default=str))
    print(f"({table.num_rows} rows in this version)", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from synthfactory.publishing import export_version

    folder = export_version(args.dataset, args.version, args.to)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    print(f"exported {args.dataset} version {args.version} to {folder}: {', '.join(files)}")
    print(f"load it with: datasets.load_dataset({str(folder)!r})")
    return 0


def _push(args: argparse.Namespace) -> int:
    import tempfile

    from synthfactory.publishing import plan_push, push

    with tempfile.TemporaryDirectory(prefix="synthfactory-push-") as tmp:
        plan = plan_push(args.dataset, args.version, args.repo, Path(tmp) / "export", private=args.private)
        print(f"{'would push' if args.dry_run else 'pushing'} {args.dataset} version {args.version} to "
              f"datasets/{plan.repo_id} ({'private' if plan.private else 'public'}) in one commit, tag {plan.tag}:")
        for name in plan.files:
            print(f"  add {name}")
        print(f"  message: {plan.commit_message}")
        if args.dry_run:
            return 0
        print(push(plan))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from synthfactory.publishing import diff_versions

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


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthfactory", description="Synthetic training-data factory.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe end to end and publish a new dataset version")
    run.add_argument("recipe")
    run.add_argument("--store", default="store", help="folder or object-store URI holding datasets (default ./store)")
    run.add_argument("--batches", type=int, default=None, help="number of batches (overrides batches.count)")
    run.add_argument("--batch-size", type=int, default=None, help="rows per batch (overrides batches.size)")
    run.add_argument("--json", action="store_true", help="print one JSON summary object last")
    run.set_defaults(func=_run)
    versions = sub.add_parser("versions", help="list the published versions of a dataset")
    versions.add_argument("dataset", help="DIR/NAME")
    versions.add_argument("--json", action="store_true")
    versions.set_defaults(func=_versions)
    show = sub.add_parser("show", help="print rows of a version")
    show.add_argument("dataset", help="DIR/NAME")
    show.add_argument("--version", type=int, default=None)
    show.add_argument("--limit", type=int, default=5)
    show.set_defaults(func=_show)
    export = sub.add_parser("export", help="write a version as a Hugging Face Hub dataset folder")
    export.add_argument("dataset", help="DIR/NAME")
    export.add_argument("--version", type=int, required=True)
    export.add_argument("--to", type=Path, required=True, help="output folder (card, plots, data/*.parquet)")
    export.set_defaults(func=_export)
    push = sub.add_parser("push", help="upload a version to the Hub in one commit and tag it vN")
    push.add_argument("dataset", help="DIR/NAME")
    push.add_argument("--version", type=int, required=True)
    push.add_argument("--repo", required=True, help="ORG/NAME of the Hub dataset repo")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--dry-run", action="store_true", help="print what would be committed; no network")
    push.set_defaults(func=_push)
    diff = sub.add_parser("diff", help="rows added/removed, metric deltas and drift between two versions")
    diff.add_argument("dataset", help="DIR/NAME")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=_diff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("batches", "batch_size", "limit"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            print(f"synthfactory: error: --{flag.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except UserError as exc:
        print(f"synthfactory: error: {exc}", file=sys.stderr)
        return 2
    except ValidationGateError as exc:
        print(f"synthfactory: validation failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
