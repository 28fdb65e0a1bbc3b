"""Prefect tasks: thin wrappers that call the synthfactory core, one per stage."""

from tasks.stages import (
    filter_batch_task,
    generate_batch_task,
    grade_batch_task,
    load_seeds_task,
    measure_batch_task,
    publish_task,
    report_task,
    screen_batch_task,
    start_engines_task,
    validate_batch_task,
    verify_batch_task,
)

__all__ = [
    "filter_batch_task", "generate_batch_task", "grade_batch_task", "load_seeds_task", "measure_batch_task", "publish_task", "report_task", "screen_batch_task",
    "start_engines_task", "validate_batch_task", "verify_batch_task",
]
