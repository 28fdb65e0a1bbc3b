"""The factory flow: orchestration only. It builds the Prefect executor and watcher and hands the
run to the core's driver (`synthfactory.run.driver`): engines -> plan -> the stage line per batch
(`synthfactory.registry.STAGES`, one task each) -> publish once.

Batches are kept in flight, a few per engine replica, so no engine idles while work remains.
Finished stages are kept per batch in the dataset's staging folder: a rerun after a crash
resumes without regenerating them (a run begun with `synthfactory run --no-prefect` too).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, runtime
from prefect.task_runners import ThreadPoolTaskRunner

from flows.executor import PrefectExecutor, PrefectWatcher
from synthfactory.errors import UserError
from synthfactory.recipe import load_recipe
from synthfactory.registry import STAGES
from synthfactory.run.driver import MAX_WINDOW, drive_run
from synthfactory.storage import StorageError, storage_options
from synthfactory.store import DatasetStore


def _run_name() -> str:
    """`{recipe name}-v{version it will publish}`, as the UI lists runs; the file stem if unreadable."""
    parameters = runtime.flow_run.parameters
    path = Path(str(parameters.get("recipe_path", "recipe")))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = raw["name"]
        store = parameters.get("store", "store")
        dataset = DatasetStore(f"{str(store).rstrip('/')}/{name}",
                               storage_options(f"{store}/{name}", raw.get("storage_options")))
        return f"{name}-v{dataset.next_version()}"
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, UserError, StorageError):
        return path.stem  # the run itself reports what is wrong, in one line


@flow(name="synthfactory", flow_run_name=_run_name, log_prints=True,
      # a stage task waits for its batch's previous stage in a runner thread: every stage of every
      # batch in flight gets one, or later batches' generate calls queue behind waiting stages
      task_runner=ThreadPoolTaskRunner(max_workers=len(STAGES) * MAX_WINDOW + 8))
def factory_flow(recipe_path: str, store: str = "store", batches: int | None = None,
                 batch_size: int | None = None, target_rows: int | None = None) -> dict[str, Any]:
    """Run one recipe end to end and publish one new version of its dataset (`target_rows`:
    until that many rows passed, then exactly that many)."""
    started = time.perf_counter()
    loaded = load_recipe(recipe_path, batches=batches, batch_size=batch_size, target_rows=target_rows)
    dataset = DatasetStore.for_run(store, loaded.recipe)
    executor = PrefectExecutor(dataset)
    with executor.lock(dataset):
        return drive_run(loaded, dataset, executor, started, watcher=PrefectWatcher())
