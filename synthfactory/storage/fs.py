"""One file-system layer for everything a dataset owns: fsspec, local folders and object stores alike.

A `Location` is a URI plus its fsspec file system. Staging, the near-dup index, embeddings, cards,
calibrations, learned models and Data Docs are all read and written through it, so `s3://bucket/ds`
behaves like the folder `store/ds` and a run resumes on any machine. fsspec because Prefect's
`RemoteFileSystem` result storage and Hugging Face `datasets` use it too: one choice covers all.
s3fs serves s3://; gcsfs (gs://) and adlfs (az://) are optional installs, imported on first use.

Writes are whole or absent: a local file is written to a temporary name beside it and renamed; an
object-store put is atomic per object. A store that cannot be reached (credentials, endpoint,
bucket) is one `StorageError` line naming the store and the cause.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from synthfactory.errors import SynthfactoryError, UserError
from synthfactory.storage.options import StorageOptions, storage_options

# the package each optional protocol needs (fsspec's own message names it, with more words)
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
            "abfss": "adlfs"}


class StorageError(SynthfactoryError):
    """A store that cannot be reached or written (credentials, endpoint, bucket): the run cannot
    go on, exit 1, one line with the store and the cause."""


def is_remote(uri: str | Path) -> bool:
    """An object-store URI (`s3://`, `gs://`, ...), as opposed to a local path or `file://`."""
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def _cause(exc: BaseException) -> str:
    """The first line of an exception, with its kind: what a user needs, no traceback."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _filesystem(uri: str, options: StorageOptions) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    protocol = uri.split("://", 1)[0].lower()
    try:
        return url_to_fs(uri, **options.fsspec)
    except ImportError:
        package = PACKAGES.get(protocol, f"an fsspec implementation of {protocol}://")
        raise UserError(f"{uri}: {protocol}:// stores need the package {package} (pip install {package})") from None
    except ValueError as exc:
        raise UserError(f"{uri}: not a store this machine can open ({_cause(exc)})") from None


class Location:
    """A file or folder of a dataset: `uri` as the user wrote it, `path` as its file system names it."""

    __slots__ = ("uri", "path", "fs", "options")

    def __init__(self, uri: str, path: str, fs: Any, options: StorageOptions | None) -> None:
        self.uri, self.path, self.fs, self.options = uri, path, fs, options

    @classmethod
    def of(cls, uri: str | Path | Location, options: StorageOptions | None = None) -> Location:
        """`uri` (a local path, `file://`, `s3://`, `gs://`, `az://`...) on its file system; an object
        store's credentials from `options`, else from the environment (`storage_options`)."""
        if isinstance(uri, Location):
            return uri
        text = str(uri)
        text = text.rstrip("/") or text
        if not is_remote(text):
            from fsspec.implementations.local import LocalFileSystem

            return cls(text, os.path.abspath(text.removeprefix("file://")), LocalFileSystem(), options)
        options = options if options is not None else storage_options(text)
        fs, path = _filesystem(text, options)
        return cls(text, path.rstrip("/"), fs, options)

    # -- naming ------------------------------------------------------------------------------
    def child(self, *parts: str) -> Location:
        tail = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
        if not tail:
            return self
        return Location(f"{self.uri}/{tail}", f"{self.path}/{tail}", self.fs, self.options)

    def __truediv__(self, part: str) -> Location:
        return self.child(part)

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def local_path(self) -> Path | None:
        """The folder or file on this machine's disk, or None on an object store: only for the local
        lock and libraries that need a real path (they write to a temp folder, then `put_dir`)."""
        return None if is_remote(self.uri) else Path(self.path)

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.uri, self.path) == (other.uri, other.path)

    def __hash__(self) -> int:
        return hash((self.uri, self.path))

    # -- errors ------------------------------------------------------------------------------
    @contextmanager
    def _errors(self, writing: bool = False) -> Iterator[None]:
        """An object store's failures as one StorageError line (a missing file stays
        FileNotFoundError when reading: absent is an answer); local ones as they are."""
        if self.local_path is not None:
            yield
            return
        try:
            yield
        except FileNotFoundError as exc:
            if not writing:
                raise
            raise StorageError(f"store {self.uri}: cannot write ({_cause(exc)}; does the bucket exist?)") from None
        except (SynthfactoryError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as exc:  # credentials, endpoint, network: one line for the user
            raise StorageError(f"store {self.uri}: {'cannot write' if writing else 'cannot read'} ({_cause(exc)})"
                               ) from None

    def _fresh(self) -> None:
        """Forget cached listings: another process (a run on another machine) may have written."""
        if self.local_path is None:
            self.fs.invalidate_cache(self.path)

    # -- queries -----------------------------------------------------------------------------
    def exists(self) -> bool:
        with self._errors():
            self._fresh()
            return bool(self.fs.exists(self.path))

    def isdir(self) -> bool:
        with self._errors():
            self._fresh()
            return bool(self.fs.isdir(self.path))

    def isfile(self) -> bool:
        with self._errors():
            self._fresh()
            return bool(self.fs.isfile(self.path))

    def ls(self) -> list[Location]:
        """The entries directly inside this folder, by name; [] if it does not exist."""
        with self._errors():
            self._fresh()
            try:
                found = self.fs.ls(self.path, detail=False)
            except FileNotFoundError:
                return []
        return sorted((self._below(p) for p in found if p.rstrip("/") != self.path), key=lambda x: x.uri)

    def glob(self, pattern: str) -> list[Location]:
        """Entries below this folder matching `pattern` (fsspec glob: `*`, `?`, `[..]`, `**`), by name."""
        with self._errors():
            self._fresh()
            found = self.fs.glob(f"{self.path}/{pattern}")
        return sorted((self._below(p) for p in found), key=lambda x: x.uri)

    def _below(self, path: str) -> Location:
        path = self.fs._strip_protocol(path).rstrip("/")
        prefix = self.path.rstrip("/") + "/"
        if not path.startswith(prefix):
            raise ValueError(f"{path} is not inside {self.path}")
        return self.child(path[len(prefix):])

    # -- reading -----------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        """The file's bytes; FileNotFoundError if it does not exist."""
        with self._errors():
            return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    # -- writing -----------------------------------------------------------------------------
    def write_bytes(self, data: bytes) -> Location:
        """The whole file or nothing: a local file is written beside its name (`{name}.partial-*`) and
        renamed; an object-store put is atomic. Folders are made as needed."""
        local = self.local_path
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(f"{local.name}.partial-{uuid.uuid4().hex[:12]}")  # others may write too
            try:
                with open(partial, "xb") as handle:  # plain open: the umask's permissions, as any file here
                    handle.write(data)
                os.replace(partial, local)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            return self
        with self._errors(writing=True):
            self.fs.pipe_file(self.path, data)
        return self

    def write_text(self, text: str, encoding: str = "utf-8") -> Location:
        return self.write_bytes(text.encode(encoding))

    @contextmanager
    def open(self, mode: str = "rb") -> Iterator[IO[Any]]:
        """The file as a stream (for libraries that read or write file objects: parquet, pickle).
        Writing streams are not atomic locally: prefer `write_bytes` for files others read."""
        writing = any(flag in mode for flag in "wax+")
        if writing and self.local_path is not None:
            self.local_path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors(writing=writing):
            with self.fs.open(self.path, mode) as handle:
                yield handle

    def rm(self, recursive: bool = False, missing_ok: bool = True) -> None:
        """Delete the file (or, `recursive`, the folder and all below it)."""
        with self._errors(writing=True):
            try:
                self.fs.rm(self.path, recursive=recursive)
            except FileNotFoundError:
                if not missing_ok:
                    raise
        self._fresh()

    def rmdir_if_empty(self) -> None:
        """Remove an empty local folder (object stores have no folders: nothing to do)."""
        local = self.local_path
        if local is not None and local.is_dir() and not any(local.iterdir()):
            local.rmdir()

    def put_dir(self, local_dir: str | Path, seen: dict[str, tuple[int, int]] | None = None) -> list[Location]:
        """Copy every file under `local_dir` (a library's output in a temp folder) to the same names
        under this folder, each file whole; returns what was copied. `seen` (relative name ->
        (size, mtime_ns) of files copied before) skips the unchanged ones and is updated."""
        local_dir = Path(local_dir)
        written = []
        for source in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            name, stat = source.relative_to(local_dir).as_posix(), source.stat()
            if seen is not None:
                if seen.get(name) == (stat.st_size, stat.st_mtime_ns):
                    continue
                seen[name] = (stat.st_size, stat.st_mtime_ns)
            written.append(self.child(name).write_bytes(source.read_bytes()))
        return written


def location(uri: str | Path | Location, options: StorageOptions | None = None) -> Location:
    """`Location.of`, for call sites that take a path, a URI or a Location alike."""
    return Location.of(uri, options)
