"""The probe flow: orchestration only. It probes one published version of a dataset (fine-tunes the
recipe's generator on it and evaluates base vs tuned, `synthfactory.probe`).

The `probe` deployment in deploy/prefect.yaml runs it after every factory run that completes (an
event trigger on the run's `prefect.flow-run.Completed` event, with the run's `store`, `recipe_path`
and id as parameters): a flow run of its own, queued behind the publish, so a probe never delays
one. `version` probes a given version instead (`prefect deployment run synthfactory-probe/probe
--param version=3 ...`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, runtime

from tasks.probe import find_version_task, probe_version_task


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    return f"probe-{parameters.get('flow_run_id') or parameters.get('version') or 'latest'}"


@flow(name="synthfactory-probe", flow_run_name=_run_name)  # no log_prints: the trainer prints bytecode dumps
def probe_flow(store: str = "store", recipe_path: str = "recipes/recursive.yaml", flow_run_id: str | None = None,
               version: int | None = None, steps: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Probe the version the factory run `flow_run_id` published (or `version`, or the newest)."""
    uri, found = find_version_task(store, recipe_path, flow_run_id, version)
    if found is None:
        return {"uri": uri, "version": None, "probe": None}
    return {"uri": uri, "version": found, "probe": probe_version_task(uri, found, steps, seed, recipe_path)}
