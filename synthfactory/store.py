"""Versioned datasets on Delta Lake: one run, one atomic commit, user versions from 1.

A dataset lives at `{store}/{name}`; quarantined and rejected rows at `{store}/{name}/_quarantine`
(a second Delta table, with reasons and validation results). Directories starting with `_` are
ignored by Delta readers and by VACUUM, so staging and quarantine sit safely inside the table.
Local folders and object stores (`s3://`, `gs://`, `az://`) alike: Delta gets the store's
`storage_options`, every other file goes through `synthfactory.storage` (fsspec).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from synthfactory.errors import UserError
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.model.metadata import VersionMetadata
from synthfactory.storage import Location, StorageOptions, storage_options

METADATA_KEY = "synthfactory"
QUARANTINE_DIR = "_quarantine"
STAGING_DIR = "_staging"
INDEX_DIR = "_index"
EMBEDDINGS_DIR = "_embeddings"
DATA_DOCS_DIR = "_data_docs"
LOCK_FILE = "_lock"

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("version", pa.int32()), ("batch_id", pa.string()), ("stage", pa.string()),
    ("status", pa.string()), ("reason", pa.string()), ("location", pa.string()), ("row", pa.string()),
    ("validation", pa.string()), ("quarantined_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True)
class VersionInfo:
    """One published version as `synthfactory versions` lists it."""

    version: int
    delta_version: int
    rows: int
    created: datetime
    metadata: VersionMetadata


def _table_exists(table: Location) -> bool:
    return table.child("_delta_log").isdir()


def recipe_storage_options(uri: str, recipe: Any) -> StorageOptions:
    """The options reaching `uri`, from the environment variables the recipe's `storage_options`
    section names (the standard ones without it)."""
    return storage_options(uri, getattr(recipe, "storage_options", None))


class DatasetStore:
    """The Delta table behind one dataset, its versions and its quarantine, and every other file
    the dataset owns (`Location`s under `root`: staging, index, embeddings, Data Docs)."""

    def __init__(self, uri: str | Path, options: StorageOptions | None = None) -> None:
        self.uri = str(uri).rstrip("/")
        self.options = options if options is not None else storage_options(self.uri)
        self.root = Location.of(self.uri, self.options)
        self.quarantine_uri = f"{self.uri}/{QUARANTINE_DIR}"
        self.staging_path = self.root.child(STAGING_DIR)  # finished batch stages (Prefect's result layout)
        self.index_path = self.root.child(INDEX_DIR)  # near-dup index, one file per version
        self.embeddings_path = self.root.child(EMBEDDINGS_DIR)  # embeddings of each version's rows
        self.data_docs_path = self.root.child(DATA_DOCS_DIR)  # GX Data Docs of failed batches

    @classmethod
    def for_recipe(cls, store: str | Path, name: str, options: StorageOptions | None = None) -> DatasetStore:
        return cls(f"{str(store).rstrip('/')}/{name}", options)

    @classmethod
    def for_run(cls, store: str | Path, recipe: Any) -> DatasetStore:
        """The dataset a recipe publishes to, reached with the environment variables its
        `storage_options` section names (if it has one; else the standard ones)."""
        uri = f"{str(store).rstrip('/')}/{recipe.name}"
        return cls(uri, recipe_storage_options(uri, recipe))

    def exists(self) -> bool:
        return _table_exists(self.root)

    def _table(self, uri: str | None = None, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(uri or self.uri, version=version, storage_options=self.options.delta or None)

    @contextmanager
    def exclusive(self, holder: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold this (local) dataset exclusively while the block runs: an `flock` on `{uri}/_lock`.

        Other runs of the dataset wait here. The kernel drops the lock when its process ends, even
        by SIGKILL, so a crashed run never leaves the dataset locked. The file names the holder.
        An object store has no flock: its runs queue on Prefect's global concurrency limit
        (`flows/executor.py`).
        """
        folder = self.root.local_path
        if folder is None:
            raise UserError(f"{self.uri}: an object store cannot be locked with flock; runs of it queue on "
                            "Prefect's global concurrency limit")
        path = folder / LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                (on_wait or log.warning)(f"{self.uri} is in use by {handle.read().strip() or 'another run'}; waiting")
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"holder": holder, "host": socket.gethostname(), "pid": os.getpid(),
                                     "since": datetime.now(timezone.utc).isoformat()}))
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle, fcntl.LOCK_UN)

    def versions(self) -> list[VersionInfo]:
        """Published versions, oldest first, read from the commit metadata."""
        return self._versions_in(self._table()) if self.exists() else []

    def _versions_in(self, table: Any) -> list[VersionInfo]:
        found = []
        for entry in table.history():
            raw = entry.get(METADATA_KEY)
            if raw is None:
                continue
            meta = self._parse_metadata(raw, entry["version"])
            found.append(VersionInfo(
                version=meta.version, delta_version=int(entry["version"]),
                rows=int(entry.get("operationMetrics", {}).get("num_added_rows", meta.totals.accepted)),
                created=datetime.fromtimestamp(entry["timestamp"] / 1000, tz=timezone.utc), metadata=meta,
            ))
        return sorted(found, key=lambda v: v.version)

    def _parse_metadata(self, raw: str | dict[str, Any], delta_version: int) -> VersionMetadata:
        """A commit's metadata as the typed record (any version's: what older code wrote parses too)."""
        try:
            return VersionMetadata.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
        except (ValueError, ValidationError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
            loc = first["loc"][1:] if first["loc"][:1] and first["loc"][0] in VersionMetadata.GROUPS else first["loc"]
            where = ".".join(map(str, loc)) or "the JSON"  # the key as the JSON holds it (groups are flat there)
            raise UserError(f"{self.uri}: the metadata of Delta version {delta_version} does not parse "
                            f"({where}: {first['msg']})") from None

    def next_version(self) -> int:
        versions = self.versions()
        return versions[-1].version + 1 if versions else 1

    def delta_version_of(self, version: int | None) -> int:
        versions = self.versions()
        if not versions:
            raise UserError(f"{self.uri}: no published dataset here (run a recipe first)")
        if version is None:
            return versions[-1].delta_version
        for info in versions:
            if info.version == version:
                return info.delta_version
        raise UserError(f"{self.uri}: no version {version}; versions are {[v.version for v in versions]}")

    def read(self, version: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """The table as it was when `version` was published (time travel); latest by default."""
        return self._table(version=self.delta_version_of(version)).to_pyarrow_table(columns=columns)

    def rows_added_by(self, version: int) -> pa.Table:
        """Only the rows version `version` appended (its run's output), filtered in the Delta scan."""
        table = self._table(version=self.delta_version_of(version))
        return table.to_pyarrow_table(filters=[("version", "=", version)])

    def rows_added_by_versions(self, versions: list[int]) -> pa.Table:
        """The rows each of `versions` appended, read at the newest of them, filtered in the scan."""
        table = self._table(version=self.delta_version_of(max(versions)))
        return table.to_pyarrow_table(filters=[("version", "in", sorted(versions))])

    def publish(self, rows: list[dict[str, Any]], metadata: VersionMetadata, schema: pa.Schema = ROW_SCHEMA) -> int:
        """Append a run's accepted rows in ONE commit that carries the run's metadata.

        Readers see the old version or the new one, never part of it. `schema`: the base row
        schema plus the method's columns (Delta merges in the columns a new method adds).
        The commit is made on the snapshot whose versions were checked, with no retry: if another
        writer committed meanwhile (two unlocked runs on an object store), Delta's put-if-absent
        fails this commit instead of rebasing it, so no two commits carry one version number.
        """
        from deltalake import CommitProperties, write_deltalake
        from deltalake.exceptions import CommitFailedError, DeltaError

        version = metadata.version
        meanwhile = UserError(f"{self.uri}: version {version} was published meanwhile; run again for the next one")
        snapshot = self._table() if self.exists() else None
        if snapshot is not None and any(v.version == version for v in self._versions_in(snapshot)):
            raise meanwhile
        table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
        try:
            write_deltalake(  # no table yet: create it ("error" if one appeared meanwhile), never append to another's
                snapshot if snapshot is not None else self.uri, table,
                mode="append" if snapshot is not None else "error", schema_mode="merge",
                storage_options=self.options.delta or None,
                commit_properties=CommitProperties(custom_metadata={METADATA_KEY: json.dumps(metadata.as_commit())},
                                                   max_commit_retries=0),
            )
        except CommitFailedError:
            raise meanwhile from None
        except DeltaError as exc:
            if snapshot is None and "already exists" in str(exc):
                raise meanwhile from None
            raise
        return version

    def quarantine(self, run_id: str, version: int, records: list[dict[str, Any]]) -> int:
        """Keep every row that was not published, with its reason; idempotent per run id."""
        from deltalake import CommitProperties, write_deltalake

        if _table_exists(self.root.child(QUARANTINE_DIR)):
            for entry in self._table(self.quarantine_uri).history():
                if entry.get("synthfactory_run_id") == run_id:
                    return 0  # this run's quarantine was already written before an interruption
        now = datetime.now(timezone.utc)
        table = pa.Table.from_pylist(
            [{**r, "run_id": run_id, "version": version, "quarantined_at": now} for r in records],
            schema=QUARANTINE_SCHEMA,
        ) if records else QUARANTINE_SCHEMA.empty_table()
        write_deltalake(self.quarantine_uri, table, mode="append", storage_options=self.options.delta or None,
                        commit_properties=CommitProperties(custom_metadata={"synthfactory_run_id": run_id}))
        return len(records)

    def clear_staged(self, batch_ids: list[str]) -> None:
        """Drop a published run's staged stage results (`{batch_id}-{stage}`); they are in the table now."""
        staged = self.staging_path.ls()
        if not staged:
            return
        ids = set(batch_ids)
        for entry in staged:  # one listing, then one delete per file (an object store lists slowly)
            if entry.name.split("-", 1)[0] in ids:
                entry.rm()
        self.staging_path.rmdir_if_empty()

    def read_quarantine(self) -> pa.Table:
        if not _table_exists(self.root.child(QUARANTINE_DIR)):
            return QUARANTINE_SCHEMA.empty_table()
        return self._table(self.quarantine_uri).to_pyarrow_table()


def load_dataset_version(uri: str | Path, version: int | None = None, options: StorageOptions | None = None):
    """A published version as a `datasets.Dataset` (latest when `version` is None); an object
    store's credentials from `options`, else from the environment."""
    import datasets
    from datasets.table import InMemoryTable

    store = DatasetStore(uri, options)
    return datasets.Dataset(InMemoryTable(store.read(version)))
