"""synthfactory: a workflow-orchestrated factory for synthetic LLM training data."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_dataset_version", "run_recipe", "__version__"]


def __getattr__(name: str) -> Any:
    """`load_dataset_version` and `run_recipe` on first use: importing a core module (an engine inside a Ray
    actor, a benchmark child in another venv) should not pull in the store (pyarrow, deltalake)."""
    if name == "load_dataset_version":
        from synthfactory.store import load_dataset_version

        return load_dataset_version
    if name == "run_recipe":  # a run with no Prefect server (the core's run driver, local executor)
        from synthfactory.run.driver import run_recipe

        return run_recipe
    raise AttributeError(f"module 'synthfactory' has no attribute {name!r}")
