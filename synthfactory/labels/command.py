"""`synthfactory label STORE/NAME`: the labelling page, or the Label Studio export/import."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from synthfactory.errors import UserError
from synthfactory.labels.sample import LabelItem, Sample, candidates, draw_sample
from synthfactory.labels.table import append_labels, labels_uri
from synthfactory.store import DatasetStore


def _say(args: argparse.Namespace, text: str, **data: Any) -> None:
    print(json.dumps(data, default=str) if args.json else text, flush=True)


def _labeller(args: argparse.Namespace) -> str:
    who = (args.who or "").strip()
    if who:
        return who
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise UserError("cannot tell who you are from the OS; give --who NAME") from None


def _store(args: argparse.Namespace) -> DatasetStore:
    store = DatasetStore(args.dataset)
    if not store.exists() or not store.versions():
        raise UserError(f"{args.dataset}: no published dataset here (give STORE/NAME of a dataset a run published)")
    return store


def label_command(args: argparse.Namespace) -> int:
    if args.export_label_studio and args.import_label_studio:
        raise UserError("give --export-label-studio or --import-label-studio, not both")
    if args.rows < 1:
        raise UserError(f"--rows must be at least 1, not {args.rows}")
    store = _store(args)
    if args.import_label_studio:
        return _import(args, store)
    sample = draw_sample(store, args.version, args.rows, _labeller(args))
    if not sample.items:
        raise UserError(f"{args.dataset}: version {sample.version} has no generated rows to label")
    if args.export_label_studio:
        return _export(args, sample)
    return _serve(args, store, sample)


def _export(args: argparse.Namespace, sample: Sample) -> int:
    from synthfactory.labels.labelstudio import export_tasks

    config = export_tasks(sample.items, sample.rubric, args.export_label_studio)
    _say(args, f"wrote {len(sample.items)} Label Studio tasks of {sample.dataset} v{sample.version} to "
               f"{args.export_label_studio}; paste the labelling config {config} into the project's Labeling "
               f"Interface, import the tasks, label, export as JSON, then: synthfactory label {args.dataset} "
               f"--import-label-studio EXPORT.json",
         tasks=len(sample.items), file=str(args.export_label_studio), config=str(config), version=sample.version)
    return 0


def _import(args: argparse.Namespace, store: DatasetStore) -> int:
    from synthfactory.labels.labelstudio import import_annotations

    versions = {info.version: info for info in store.versions()}
    default = args.version if args.version is not None else max(versions)
    store.delta_version_of(default)  # one line when --version does not exist
    pools: dict[int, dict[str, LabelItem]] = {}

    def lookup(row_id: str, version: int | None) -> LabelItem | None:
        version = default if version is None else version
        if version not in versions:
            return None
        if version not in pools:
            pools[version] = {item.row_id: item for item in candidates(store, version, versions[version].metadata)}
        return pools[version].get(row_id)

    result = import_annotations(args.import_label_studio, lookup, args.who)
    append_labels(store.uri, result.labels)
    counts = {key: sum(1 for label in result.labels if label["label"] == key) for key in ("good", "bad", "skip")}
    _say(args, f"imported {len(result.labels)} labels (good {counts['good']}, bad {counts['bad']}, skip "
               f"{counts['skip']}) from {args.import_label_studio} into {labels_uri(store.uri)}; "
               f"{result.unannotated} tasks unannotated; {len(result.problems)} tasks unreadable",
         imported=len(result.labels), **counts, unannotated=result.unannotated, unreadable=len(result.problems),
         problems=result.problems[:20])
    if not args.json:
        for problem in result.problems[:5]:
            print(f"  unreadable: {problem}", file=sys.stderr)
        if len(result.problems) > 5:
            print(f"  ... and {len(result.problems) - 5} more", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace, store: DatasetStore, sample: Sample) -> int:
    from synthfactory.labels.server import HOST, LabelSession, bind, serve

    total, left = len(sample.items), len(sample.remaining)
    if not left:
        _say(args, f"{sample.dataset} v{sample.version}: all {total} sampled rows are labelled by "
                   f"{sample.labeller}; give --rows {total + args.rows} for more", done=total, total=total)
        return 0
    session = LabelSession(store.uri, sample)
    sock = bind(args.port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    _say(args, f"labelling {sample.dataset} v{sample.version} as {sample.labeller}: {left} of {total} sampled "
               f"rows to go. Open {url}  (each label is saved when given; Ctrl-C stops)",
         url=url, version=sample.version, labeller=sample.labeller, total=total, remaining=left)
    try:
        serve(session, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    done = total - len(sample.remaining)
    given = sum(session.counts.values())
    _say(args, f"{given} labels given (good {session.counts['good']}, bad {session.counts['bad']}, skip "
               f"{session.counts['skip']}); {done} of {total} sampled rows labelled; labels in {labels_uri(store.uri)}",
         given=given, **session.counts, done=done, total=total, labels=labels_uri(store.uri))
    return 0
