"""`synthfactory diff STORE/NAME A B`: rows added and removed, metric deltas and drift between
two versions (`synthfactory.publish.hub.diff_versions`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from synthfactory.cli.common import num


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    diff = sub.add_parser("diff", parents=[common],
                          help="rows added/removed, metric deltas and drift between two versions")
    diff.add_argument("dataset", help="DIR/NAME")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=diff_command)


def diff_command(args: argparse.Namespace) -> int:
    from synthfactory.publish.hub import diff_versions

    result = diff_versions(args.dataset, args.a, args.b)
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    print(f"{result['dataset']}: version {args.a} ({result['rows_a']} rows) -> version {args.b} "
          f"({result['rows_b']} rows): {result['rows_added']} rows added, {result['rows_removed']} removed")
    for key, values in result["metrics"].items():
        delta = values["delta"]
        print(f"  {key:<36} {num(values['a']):>10} -> {num(values['b']):>10}"
              + (f"  ({delta:+.4g})" if isinstance(delta, (int, float)) else ""))
    drift = result["drift_frechet"]
    print(f"  drift (Frechet distance of the rows each version added): {num(drift)}")
    return 0
