"""synthfactory: a workflow-orchestrated factory for synthetic LLM training data."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_dataset_version", "__version__"]


def __getattr__(name: str) -> Any:
    """`load_dataset_version` on first use: importing a core module (an engine inside a Ray
    actor, a benchmark child in another venv) should not pull in the store (pyarrow, deltalake)."""
    if name == "load_dataset_version":
        from synthfactory.store import load_dataset_version

        return load_dataset_version
    raise AttributeError(f"module 'synthfactory' has no attribute {name!r}")
