"""Prefect tasks: any core function as a task on the fly (`units`), the run report, and the probe's."""

from tasks.units import as_task, report_task

__all__ = ["as_task", "report_task"]
