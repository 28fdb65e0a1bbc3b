"""Run progress for whoever watches in this process (the CLI's progress bar).

The flow reports what it knows (engines up, batches done, rows accepted); nothing listens unless
a caller subscribes, so a deployment run on a worker pays nothing. Prefect's progress artifact
is the same fraction for the UI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RunProgress:
    """One update: `phase` is starting | engines | batches | publishing | done."""

    phase: str
    batches_done: int = 0
    batches_total: int = 0
    accepted: int = 0
    target: int | None = None  # batches.target_rows: progress is accepted of target


_listeners: list[Callable[[RunProgress], None]] = []


def report(update: RunProgress) -> None:
    """Tell every listener; a listener that fails never fails the run."""
    for listener in list(_listeners):
        try:
            listener(update)
        except Exception:  # a progress display must not stop production
            pass


@contextmanager
def listening(listener: Callable[[RunProgress], None]) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
