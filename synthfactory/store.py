"""Versioned datasets on Delta Lake: one run, one atomic commit, user versions from 1.

A dataset lives at `{store}/{name}`; quarantined and rejected rows at `{store}/{name}/_quarantine`
(a second Delta table, with reasons and validation results). Directories starting with `_` are
ignored by Delta readers and by VACUUM, so staging and quarantine sit safely inside the table.
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
from synthfactory.lineage import ROW_SCHEMA
from synthfactory.run.metadata import VersionMetadata

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


def _table_exists(uri: str) -> bool:
    return (Path(uri) / "_delta_log").is_dir() if "://" not in uri else _remote_exists(uri)


def _remote_exists(uri: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(uri)


class DatasetStore:
    """The Delta table behind one dataset, its versions and its quarantine."""

    def __init__(self, uri: str | Path) -> None:
        self.uri = str(uri).rstrip("/")
        self.quarantine_uri = f"{self.uri}/{QUARANTINE_DIR}"
        self.staging_path = Path(self.uri) / STAGING_DIR
        self.index_path = Path(self.uri) / INDEX_DIR
        self.embeddings_path = Path(self.uri) / EMBEDDINGS_DIR
        self.data_docs_path = Path(self.uri) / DATA_DOCS_DIR  # GX Data Docs of failed batches

    @classmethod
    def for_recipe(cls, store: str | Path, name: str) -> "DatasetStore":
        return cls(f"{str(store).rstrip('/')}/{name}")

    def exists(self) -> bool:
        return _table_exists(self.uri)

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.startswith("file://")

    @contextmanager
    def exclusive(self, holder: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold this (local) dataset exclusively while the block runs: an `flock` on `{uri}/_lock`.

        Other runs of the dataset wait here. The kernel drops the lock when its process ends, even
        by SIGKILL, so a crashed run never leaves the dataset locked. The file names the holder.
        """
        path = Path(self.uri.removeprefix("file://")) / LOCK_FILE
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
        if not self.exists():
            return []
        from deltalake import DeltaTable

        found = []
        for entry in DeltaTable(self.uri).history():
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
        from deltalake import DeltaTable

        return DeltaTable(self.uri, version=self.delta_version_of(version)).to_pyarrow_table(columns=columns)

    def rows_added_by(self, version: int) -> pa.Table:
        """Only the rows version `version` appended (its run's output), filtered in the Delta scan."""
        from deltalake import DeltaTable

        table = DeltaTable(self.uri, version=self.delta_version_of(version))
        return table.to_pyarrow_table(filters=[("version", "=", version)])

    def rows_added_by_versions(self, versions: list[int]) -> pa.Table:
        """The rows each of `versions` appended, read at the newest of them, filtered in the scan."""
        from deltalake import DeltaTable

        table = DeltaTable(self.uri, version=self.delta_version_of(max(versions)))
        return table.to_pyarrow_table(filters=[("version", "in", sorted(versions))])

    def publish(self, rows: list[dict[str, Any]], metadata: VersionMetadata, schema: pa.Schema = ROW_SCHEMA) -> int:
        """Append a run's accepted rows in ONE commit that carries the run's metadata.

        Readers see the old version or the new one, never part of it. `schema`: the base row
        schema plus the method's columns (Delta merges in the columns a new method adds).
        """
        from deltalake import CommitProperties, write_deltalake

        version = metadata.version
        if any(v.version == version for v in self.versions()):
            raise UserError(f"{self.uri}: version {version} was published meanwhile; run again for the next one")
        table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
        write_deltalake(
            self.uri, table, mode="append", schema_mode="merge",
            commit_properties=CommitProperties(custom_metadata={METADATA_KEY: json.dumps(metadata.as_commit())}),
        )
        return version

    def quarantine(self, run_id: str, version: int, records: list[dict[str, Any]]) -> int:
        """Keep every row that was not published, with its reason; idempotent per run id."""
        from deltalake import CommitProperties, DeltaTable, write_deltalake

        if _table_exists(self.quarantine_uri):
            for entry in DeltaTable(self.quarantine_uri).history():
                if entry.get("synthfactory_run_id") == run_id:
                    return 0  # this run's quarantine was already written before an interruption
        now = datetime.now(timezone.utc)
        table = pa.Table.from_pylist(
            [{**r, "run_id": run_id, "version": version, "quarantined_at": now} for r in records],
            schema=QUARANTINE_SCHEMA,
        ) if records else QUARANTINE_SCHEMA.empty_table()
        write_deltalake(self.quarantine_uri, table, mode="append",
                        commit_properties=CommitProperties(custom_metadata={"synthfactory_run_id": run_id}))
        return len(records)

    def clear_staged(self, batch_ids: list[str]) -> None:
        """Drop a published run's staged stage results (`{batch_id}-{stage}`); they are in the table now."""
        if not self.staging_path.is_dir():
            return
        for batch_id in batch_ids:
            for path in self.staging_path.glob(f"{batch_id}-*"):
                path.unlink(missing_ok=True)
        if not any(self.staging_path.iterdir()):
            self.staging_path.rmdir()

    def read_quarantine(self) -> pa.Table:
        from deltalake import DeltaTable

        if not _table_exists(self.quarantine_uri):
            return QUARANTINE_SCHEMA.empty_table()
        return DeltaTable(self.quarantine_uri).to_pyarrow_table()


def load_dataset_version(uri: str | Path, version: int | None = None):
    """A published version as a `datasets.Dataset` (latest when `version` is None)."""
    import datasets
    from datasets.table import InMemoryTable

    store = DatasetStore(uri)
    return datasets.Dataset(InMemoryTable(store.read(version)))
