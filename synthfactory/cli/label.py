"""`synthfactory label STORE/NAME`: the labelling page, or Label Studio export/import; the work is
`synthfactory.labels.command`'s."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
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
    label.set_defaults(func=label_command)


def label_command(args: argparse.Namespace) -> int:
    from synthfactory.labels.command import label_command as label

    return label(args)
