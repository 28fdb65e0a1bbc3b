"""`synthfactory` command line: run a recipe; preview it; calibrate its judge; label rows; list, show,
diff, export and push versions; check the engines. One module per command, each presentation only
(its flags, its output): the work is the core's. `synthfactory.cli.console` holds the start-up tuning
and the one-line errors.

The only place the core touches Prefect: `run` starts the flow in `flows/` (`synthfactory.cli.run`).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
from collections.abc import Sequence

from synthfactory.cli import calibrate, diff, doctor, export, label, preview, push, run, show, versions
from synthfactory.cli.common import check_store
from synthfactory.cli.console import presented, quiet_console
from synthfactory.cli.progress_bar import ProgressBar as _ProgressBar  # noqa: F401 - tests check the bar's fields

COMMANDS = (run, preview, versions, show, export, push, diff, calibrate, label, doctor)  # in `--help` order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthfactory", description="Synthetic training-data factory.")
    parser.add_argument("--debug", action="store_true",
                        help="show every log line and the full traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    for command in COMMANDS:
        command.add_parser(sub, common)
    from synthfactory.probe.command import add_probe_parser  # `synthfactory probe` (light: torch loads on use)

    add_probe_parser(sub, common)
    from synthfactory.verify.seeds_check import add_seeds_parser  # `synthfactory seeds check` (light: loads on use)

    add_seeds_parser(sub, common)
    from synthfactory.improve.command import add_improve_parsers  # `improve`, `models` (light: torch loads on use)

    add_improve_parsers(sub, common)
    return parser


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

    def command() -> int:
        if getattr(args, "dataset", None):  # versions, show, export, push, diff, label, probe: STORE/NAME
            check_store(str(args.dataset))
        return args.func(args)

    return presented(command, args.debug)
