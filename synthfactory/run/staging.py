"""The staging format: what a finished unit of a run (a batch's stage) leaves behind, so a run
that was killed resumes from it on any executor and any machine that reaches the store.

A staged result is one file, `{dataset}/_staging/{key}`, whose key is the unit's own
(`stage_key(batch_id, stage)`: the batch id hashes the recipe and the batch index). It is JSON:

    {"format": "synthfactory-staging", "version": 2, "key": "<key>",
     "serializer": "cloudpickle", "result": "<base64 of cloudpickle.dumps(value)>"}

written whole or not at all (`Location.write_bytes`), so a run killed mid-write leaves no torn
file. A file that cannot be read (torn by another tool, a foreign format, a class that no longer
exists) is treated as absent and its unit runs again; a store that cannot be reached stops the run.

The previous format (version 1, until the executor became generic) was Prefect's result record,
`{"metadata": {"serializer": {"type": "pickle", ...}, ...}, "result": "<base64>"}`, with the data
model under `synthfactory.run.batch`: it is still read, so a run staged before the change resumes.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from synthfactory.storage import Location, StorageError

log = logging.getLogger("synthfactory.run")
T = TypeVar("T")

FORMAT, VERSION = "synthfactory-staging", 2
# where classes of the data model lived when version 1 files were written
MOVED_MODULES = {"synthfactory.run.batch": "synthfactory.model.batch",
                 "synthfactory.run.plan": "synthfactory.model.plan",
                 "synthfactory.run.metadata": "synthfactory.model.metadata",
                 "synthfactory.run.cost": "synthfactory.model.cost",
                 "synthfactory.lineage": "synthfactory.model.lineage",
                 "synthfactory.rows": "synthfactory.model.rows"}


def stage_key(batch_id: str, stage: str) -> str:
    """The key of a batch's finished stage."""
    return f"{batch_id}-{stage}"


class _Unpickler(pickle.Unpickler):
    """cloudpickle's output is plain pickle; classes that moved since a file was written are found
    where they live now."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def encode(key: str, value: Any) -> bytes:
    import cloudpickle

    return json.dumps({"format": FORMAT, "version": VERSION, "key": key, "serializer": "cloudpickle",
                       "result": base64.b64encode(cloudpickle.dumps(value)).decode()}).encode()


def decode(data: bytes) -> Any:
    """The value in a staged file, of this format or the previous one; ValueError if neither."""
    record = json.loads(data)
    if record.get("format") == FORMAT:
        if record.get("version") != VERSION or record.get("serializer") != "cloudpickle":
            raise ValueError(f"staging format version {record.get('version')!r} is not {VERSION}")
    elif (record.get("metadata") or {}).get("serializer", {}).get("type") != "pickle":  # version 1
        raise ValueError("not a staged result")
    return _Unpickler(io.BytesIO(base64.b64decode(record["result"]))).load()


def read_staged(folder: Location | Path, key: str) -> Any | None:
    """The value staged under `key`, or None when there is none or it cannot be read (its unit
    runs again). A store that cannot be reached is not absent: its StorageError stops the run."""
    path = Location.of(folder).child(key)
    try:
        return decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except StorageError:
        raise
    except Exception as exc:  # a torn or foreign file: run the unit again
        log.warning("staged result %s unreadable (%s); running it again", path, exc)
        return None


def write_staged(folder: Location | Path, key: str, value: Any) -> None:
    Location.of(folder).child(key).write_bytes(encode(key, value))


def is_staged(folder: Location | Path, key: str) -> bool:
    return Location.of(folder).child(key).exists()


def load_or_run(folder: Location | Path | None, key: str, call: Callable[[], T]) -> T:
    """What `key` staged in an earlier run, or `call()` staged under `key` now (`folder` None:
    nothing kept). Both executors run every keyed unit through this."""
    if folder is None:
        return call()
    staged = read_staged(folder, key)
    if staged is not None:
        log.info("%s: loaded from staging", key)
        return staged
    value = call()
    write_staged(folder, key, value)
    return value
