"""Where a dataset's files live: one fsspec layer for local folders and object stores (`fs`), and
the credentials and options each store URI needs (`options`)."""

from synthfactory.storage.fs import Location, StorageError, is_remote, location
from synthfactory.storage.options import StorageOptions, storage_options

__all__ = ["Location", "StorageError", "StorageOptions", "is_remote", "location", "storage_options"]
