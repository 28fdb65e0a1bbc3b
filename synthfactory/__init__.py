"""synthfactory: a workflow-orchestrated factory for synthetic LLM training data."""

from synthfactory.store import load_dataset_version

__version__ = "0.1.0"
__all__ = ["load_dataset_version", "__version__"]
