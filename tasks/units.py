"""How any core function becomes a Prefect task, on the fly: the unit's kind is the task's name
(`generate`), its own name the task run's (`generate-3`), its retries Prefect's, retried only
after errors the core calls worth retrying; a keyed unit goes through the core's staging
(`synthfactory.run.staging`), so what a finished unit kept is the core's format whichever
executor wrote it. Plus the one task that is not a run step: the run's report artifacts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from synthfactory.model.metadata import VersionMetadata
from synthfactory.publish.report import rejection_table, run_report_markdown
from synthfactory.run.executor import RETRY_DELAY_S, worth_retrying
from synthfactory.run.staging import load_or_run
from synthfactory.storage import Location


def _not_ours(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a unit for transient errors only (the core's `worth_retrying`, as the local executor
    does): an engine failure, a bad recipe or a failed gate has a cause a retry would only repeat."""
    try:
        state.result()
    except Exception as exc:
        return worth_retrying(exc)
    return True


def kind_of(name: str) -> str:
    """A unit's kind: its name without the trailing `-<index>` of one of many (`generate-3`)."""
    return re.sub(r"-\d+$", "", name)


@functools.lru_cache(maxsize=256)
def _task_for(fn: Callable[..., Any], kind: str, retries: int) -> Task:
    return task(fn, name=kind, retries=retries, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=_not_ours,
                cache_policy=NO_CACHE, persist_result=False)


def _staged_unit(staging: Location | None, key: str, fn: Callable[..., Any], *args: Any) -> Any:
    return load_or_run(staging, key, lambda: fn(*args))


def as_task(fn: Callable[..., Any], name: str, *, key: str | None = None, retries: int = 0,
            staging: Location | None = None) -> tuple[Task, tuple[Any, ...]]:
    """The Prefect task for one unit and the leading arguments it takes before the unit's own:
    a keyed unit runs `fn` through the core's staging under `key`."""
    if key is None:
        return _task_for(fn, kind_of(name), retries).with_options(task_run_name=name), ()
    staged = _task_for(_staged_unit, kind_of(name), retries).with_options(task_run_name=name)
    return staged, (staging, key, fn)


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report_task(metadata: VersionMetadata, key: str) -> None:
    """The run report and the rejection table as Prefect artifacts (shown on the flow run page)."""
    create_markdown_artifact(run_report_markdown(metadata), key=f"{key}-report",
                             description=f"{metadata.dataset} version {metadata.version}")
    create_table_artifact(rejection_table(metadata), key=f"{key}-rejections",
                          description="quarantined batches and rejected-row reasons")
