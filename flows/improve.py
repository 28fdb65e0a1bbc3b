"""The self-learning loop as a Prefect flow: orchestration only. Each step of the core's loop
(`synthfactory.improve.loop`) is a task: split the seeds, measure the base model, then per round
generate (a run of the recipe, published as a version) and train (fine-tune, measure, compare,
store the model); each round's model card is an artifact, and the rounds table one at the end.

Resumable: every step writes its record beside the dataset (`_models/`), so a flow run killed at any
point and started again (`prefect deployment run synthfactory-improve/improve`) skips what is done.
The `improve` deployment in deploy/prefect.yaml runs it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, runtime

from tasks.improve import evaluate_base_task, finish_task, generate_task, split_task, train_task


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    return f"improve-{str(parameters.get('recipe_path', '')).rsplit('/', 1)[-1].removesuffix('.yaml')}"


@flow(name="synthfactory-improve", flow_run_name=_run_name)
def improve_flow(recipe_path: str = "recipes/math.yaml", store: str = "store", rounds: int = 3,
                 size: str = "small", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the loop's rounds 1..`rounds` (finished ones are read, not redone); stop at the first round
    not promoted (unless `options` says keep_going). `options` overrides the size's LoopOptions."""
    from synthfactory.engines.session import ray_session
    from synthfactory.improve.loop import options_for

    chosen = asdict(options_for(size, **(options or {})))
    split_task(recipe_path, store, chosen)
    current = evaluate_base_task(recipe_path, store, chosen)["round"]
    with ray_session(quiet=True):
        for k in range(1, rounds + 1):
            generate_task(recipe_path, store, chosen, k, current)
            record = train_task(recipe_path, store, chosen, k, current)
            if record["promoted"]:
                current = k
            elif not chosen["keep_going"]:
                break
    return finish_task(recipe_path, store, chosen, rounds)
