"""Prefect tasks of the self-learning loop: each is one recorded step of the core's loop
(`synthfactory.improve.loop.ImproveLoop`); none holds logic of its own. Each task rebuilds the loop
from its parameters (the recipe's path, the store, the options) and reads the records the earlier
steps wrote, so a task retried or resumed after a kill finds its step done and returns its record."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE


def _loop(recipe_path: str, store: str, options: dict[str, Any]) -> Any:
    from synthfactory.improve.loop import ImproveLoop, LoopOptions

    logger = get_run_logger()
    return ImproveLoop(recipe_path, store, LoopOptions(**options), progress=logger.info)


@task(name="split-seeds", cache_policy=NO_CACHE, persist_result=False)
def split_task(recipe_path: str, store: str, options: dict[str, Any]) -> dict[str, int]:
    split = _loop(recipe_path, store, options).split()
    return {"train": len(split.train), "held_out": len(split.held_out)}


@task(name="evaluate-base", cache_policy=NO_CACHE, persist_result=False)
def evaluate_base_task(recipe_path: str, store: str, options: dict[str, Any]) -> dict[str, Any]:
    return _loop(recipe_path, store, options).evaluate_base().model_dump(mode="json")


@task(name="generate", task_run_name="generate-round-{k}", cache_policy=NO_CACHE, persist_result=False)
def generate_task(recipe_path: str, store: str, options: dict[str, Any], k: int, current: int) -> dict[str, Any]:
    loop = _loop(recipe_path, store, options)
    model = loop.model_record(current)
    assert model is not None, f"round {current}'s model record is missing"
    return loop.generate(k, model).model_dump(mode="json")


@task(name="train", task_run_name="train-round-{k}", cache_policy=NO_CACHE, persist_result=False)
def train_task(recipe_path: str, store: str, options: dict[str, Any], k: int, current: int) -> dict[str, Any]:
    loop = _loop(recipe_path, store, options)
    model = loop.model_record(current)
    assert model is not None, f"round {current}'s model record is missing"
    record = loop.train(k, model)
    create_markdown_artifact(loop.models.child(f"round{k}", "README.md").read_text(),
                             key=f"{loop.loaded.recipe.name.replace('_', '-')}-round-{k}",
                             description=record.summary())
    return record.model_dump(mode="json")


@task(name="finish", cache_policy=NO_CACHE, persist_result=False)
def finish_task(recipe_path: str, store: str, options: dict[str, Any], rounds: int) -> dict[str, Any]:
    """The loop's end: its state recorded, and the rounds table as an artifact."""
    from synthfactory.improve.command import rounds_table

    loop = _loop(recipe_path, store, options)
    records = loop.run(rounds)  # every step is recorded: this only reads, and writes loop.json
    state = loop.state()
    table = rounds_table(records, f"{loop.dataset.uri}: held-out accuracy per round")
    create_markdown_artifact(f"```\n{table}\n```\n\n" + (f"Stopped: {state.stopped_because}"
                                                         if state.stopped_because else "Ran every round asked."),
                             key=f"{loop.loaded.recipe.name.replace('_', '-')}-improve",
                             description="the self-learning loop's rounds")
    return state.model_dump(mode="json")
