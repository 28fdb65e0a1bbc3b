"""What several commands share: the checks made before any work, and how numbers print."""

from __future__ import annotations

from typing import Any

from synthfactory.errors import UserError


def check_store(uri: str, recipe: Any = None) -> None:
    """Reach an object store once, before any work: a wrong key, endpoint or bucket is one line and
    exit 1 in seconds, not a failure after the engines started (`synthfactory.storage.check`)."""
    from synthfactory.storage import is_remote

    if is_remote(uri):
        from synthfactory.storage import storage_options
        from synthfactory.storage.check import check_store as reach

        reach(uri, storage_options(uri, getattr(recipe, "storage_options", None)))


def check_models(specs: list[Any]) -> None:
    """A bundled-model name or .gguf path that does not resolve is the user's to fix (exit 2)."""
    for spec in specs:
        spec.backend.check_model(spec.model)


def version_or_latest(dataset: str, version: int | None) -> int:
    """--version, or the newest published version when it is omitted (as load_dataset_version does)."""
    if version is not None:
        return version
    from synthfactory.store import DatasetStore

    published = DatasetStore(dataset).versions()
    if not published:
        raise UserError(f"{dataset}: no published dataset here (run a recipe first)")
    return published[-1].version


def interval(bounds: list[float] | None) -> str:
    return f"95% CI {bounds[0]:.3f}-{bounds[1]:.3f}" if bounds else "95% CI n/a"


def num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("n/a" if value is None else str(value))
