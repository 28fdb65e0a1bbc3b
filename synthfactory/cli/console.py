"""What a user sees of a command besides its own output: start-up tuning of the libraries'
logging, and failures as one line (`--debug` for the traceback)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from synthfactory.cli.stop import RunStopped
from synthfactory.errors import SynthfactoryError


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


class NoTracebacks(logging.Filter):
    """Failures are reported once, by the CLI, as one line: drop Prefect's own failure records
    (they carry the traceback) and the traceback of any other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.name.startswith("prefect"):
            return False
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def install_console_filter() -> None:
    """On the console handler itself (a filter on the root logger misses propagated records).
    Ray's driver prints every raylet error (a dead worker's notice, a paragraph) from a thread
    with no switch to turn it off: the CLI reports the engine's cause itself, so those go too."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, NoTracebacks) for f in handler.filters):
            handler.addFilter(NoTracebacks())
    import ray._private.worker as ray_worker

    printer = ray_worker.print_to_stdstream

    def print_but_raylet_errors(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            printer(data, ignore_prefix)

    ray_worker.print_to_stdstream = print_but_raylet_errors


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def error(message: str) -> None:
    print(f"synthfactory: error: {message}", file=sys.stderr)


def presented(command: Callable[[], int], debug: bool) -> int:
    """Run `command` and turn what it raises into one line on stderr and an exit status: our
    errors their own (`SynthfactoryError.exit_code`), SIGTERM 143 (`synthfactory.cli.stop`), Ctrl-C
    130, a bug of ours 1. With `debug`, our errors and bugs raise, traceback and all."""
    try:
        return command()
    except SynthfactoryError as exc:
        if debug:
            raise
        error(one_line(exc))
        return exc.exit_code
    except RunStopped as exc:  # SIGTERM: the one line says what was kept, with --debug too
        exc.report()
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted; a rerun resumes from the finished batches")
        return 130
    except Exception as exc:
        if debug:
            raise
        error(f"internal error ({type(exc).__name__}: {one_line(exc)}); run again with --debug for the traceback")
        return 1
