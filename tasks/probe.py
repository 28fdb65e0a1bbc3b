"""Prefect tasks of the probe flow: find the version a factory run published, and probe it. Both
call the core (`synthfactory.store`, `synthfactory.probe`); neither holds logic of its own."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from synthfactory.recipe import load_recipe
from synthfactory.store import DatasetStore


@task(name="find-version", cache_policy=NO_CACHE, persist_result=False)
def find_version_task(store: str, recipe_path: str, flow_run_id: str | None,
                      version: int | None) -> tuple[str, int | None]:
    """The dataset's uri and the version to probe: `version` if given, else the one the factory run
    `flow_run_id` published (its commit metadata names the run), else the newest."""
    dataset = DatasetStore.for_run(store, load_recipe(recipe_path).recipe)
    if version is not None:
        return dataset.uri, version
    versions = dataset.versions() if dataset.exists() else []
    if flow_run_id:
        mine = [v.version for v in versions if v.metadata.prefect_flow_run_id == flow_run_id]
        if not mine:
            get_run_logger().info("flow run %s published no version of %s: nothing to probe", flow_run_id, dataset.uri)
        return dataset.uri, (mine[0] if mine else None)
    return dataset.uri, (versions[-1].version if versions else None)


@task(name="probe-version", cache_policy=NO_CACHE, persist_result=False)
def probe_version_task(uri: str, version: int, steps: int | None, seed: int,
                       recipe_path: str | None = None) -> dict[str, Any]:
    """Fine-tune the probe model on the version, evaluate base vs tuned, record it beside the dataset
    and in its card (synthfactory.probe); the record as a dict. The store is reached with the
    credentials `recipe_path`'s `storage_options` names (resolved here, never a task parameter)."""
    from synthfactory.probe import probe_version
    from synthfactory.store import recipe_storage_options

    options: dict[str, Any] = {"seed": seed} if steps is None else {"seed": seed, "steps": steps}
    if recipe_path:
        options["storage"] = recipe_storage_options(uri, load_recipe(recipe_path).recipe)
    record = probe_version(uri, version, **options)
    get_run_logger().info("probe of %s v%d: %s", uri, version, record.summary())
    return record.model_dump(mode="json")
