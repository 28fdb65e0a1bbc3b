"""The progress bar `synthfactory run` shows on a terminal."""

from __future__ import annotations

import time
from typing import Any


class ProgressBar:
    """A rich progress bar fed by `synthfactory.run.progress`: accepted of target rows (with a target)
    or batches done of planned, rows accepted per second, and the ETA rich estimates from them."""

    LABELS = {"engines": "starting engines", "batches": "generating", "publishing": "publishing", "done": "done"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._since: float | None = None

    def __enter__(self):
        if not self.enabled:
            return lambda update: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[unit]} · {task.fields[rate]}"), TimeElapsedColumn(),
                             TextColumn("ETA"), TimeRemainingColumn(), transient=True, redirect_stderr=False)
        self._bar.start()
        self._task = self._bar.add_task("starting engines", total=None, unit="", rate="")
        return self.update

    def update(self, update: Any) -> None:
        self._bar.update(self._task, description=self.LABELS.get(update.phase, update.phase), **self.fields(update))

    def fields(self, update: Any) -> dict[str, Any]:
        """What the bar shows for one update (kept apart from rich, so it can be checked)."""
        if update.phase == "batches" and self._since is None:
            self._since = time.monotonic()
        elapsed = time.monotonic() - self._since if self._since is not None else 0.0
        rate = f"{update.accepted / elapsed:.2f} rows/s" if elapsed > 0 and update.accepted else "- rows/s"
        if update.target:
            return {"total": update.target, "completed": min(update.accepted, update.target),
                    "unit": "rows accepted", "rate": rate}
        return {"total": update.batches_total or None, "completed": update.batches_done,
                "unit": f"batches · {update.accepted} rows accepted", "rate": rate}

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
