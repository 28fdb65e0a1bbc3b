"""`synthfactory show STORE/NAME`: rows of a version, one JSON object a line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    show = sub.add_parser("show", parents=[common], help="print rows of a version")
    show.add_argument("dataset", help="DIR/NAME")
    show.add_argument("--version", type=int, default=None)
    show.add_argument("--limit", type=int, default=5)
    show.set_defaults(func=show_command)


def show_command(args: argparse.Namespace) -> int:
    from synthfactory.store import DatasetStore

    table = DatasetStore(args.dataset).read(args.version)
    for row in table.slice(0, args.limit).to_pylist():
        print(json.dumps({k: row[k] for k in ("id", "seed_id", "score", "prompt", "text")}, ensure_ascii=False,
                         default=str))
    print(f"({table.num_rows} rows in this version)", file=sys.stderr)
    return 0
