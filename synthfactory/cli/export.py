"""`synthfactory export STORE/NAME --to DIR`: a version as a Hugging Face Hub dataset folder
(`synthfactory.publish.hub`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from synthfactory.cli.common import version_or_latest


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    export = sub.add_parser("export", parents=[common], help="write a version as a Hugging Face Hub dataset folder")
    export.add_argument("dataset", help="DIR/NAME")
    export.add_argument("--version", type=int, default=None, help="default: the latest version")
    export.add_argument("--to", type=Path, required=True, help="output folder (card, plots, data/*.parquet)")
    export.add_argument("--format", default="hub",  # checked by synthfactory.publish.formats.convert (one-line error)
                        help="hub (every column), jsonl, messages (SFT), sharegpt, dpo (preference pairs)")
    export.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from synthfactory.publish.hub import export_version

    args.version = version_or_latest(args.dataset, args.version)
    folder = export_version(args.dataset, args.version, args.to, fmt=args.format)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    print(f"exported {args.dataset} version {args.version} to {folder}: {', '.join(files)}")
    print(f"load it with: datasets.load_dataset({str(folder)!r})")
    return 0
