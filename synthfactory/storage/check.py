"""Probe a store once, before a run or command does any work: a wrong key, an unreachable endpoint
or a missing bucket is one line naming the store and the cause, in seconds, before any engine starts.
"""

from __future__ import annotations

import time

from synthfactory.storage.fs import Location, StorageError, is_remote
from synthfactory.storage.options import StorageOptions


def check_store(uri: str, options: StorageOptions | None = None) -> float:
    """Reach `uri` (a dataset or store folder) the way a run will: list it (credentials, endpoint;
    a listing's error names the cause), and if it is absent, see that its bucket exists. Returns
    the seconds it took; raises `StorageError` (exit 1). A local folder needs no probe."""
    if not is_remote(uri):
        return 0.0
    started = time.monotonic()
    place = Location.of(uri, options)
    bucket_path = place.path.split("/", 1)[0]
    bucket = f"{place.uri.split('://', 1)[0]}://{bucket_path}"
    with place._errors():
        place.fs.invalidate_cache()
        try:
            place.fs.ls(place.path, detail=False)
        except FileNotFoundError:  # no dataset here yet, or no bucket
            try:
                place.fs.info(bucket_path)
            except FileNotFoundError:
                raise StorageError(f"store {place.uri}: the bucket {bucket} does not exist (create it, or fix the "
                                   "store URI or AWS_ENDPOINT_URL)") from None
    return time.monotonic() - started
