"""The storage layer (`synthfactory.storage`): one fsspec code path for local folders and a real
S3 server (moto's, on 127.0.0.1), and the dataset files that go through it: staging, the near-dup
index, embeddings, Delta versions and cards. The end-to-end runs on S3 are test_object_store.py."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from synthfactory.errors import UserError
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.storage import Location, StorageError, StorageOptions, storage_options
from tests.conftest import free_port, start_moto

BUCKET = "sf-storage-test"
SECRET = "not-a-real-secret-5f1c"
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "metadata_c6c96d3.json").read_text())


def s3_options(endpoint: str) -> StorageOptions:
    """What a user's AWS_* variables give for an S3-compatible endpoint (moto accepts any key)."""
    return storage_options(f"s3://{BUCKET}", env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET,
                                                   "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})


@pytest.fixture(scope="module")
def s3():
    """A real S3 server on 127.0.0.1 (moto's server mode, `conftest.start_moto`) with one bucket."""
    server, endpoint = start_moto()
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=5).close()
        yield s3_options(endpoint)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> Location:
    """A fresh dataset folder, on the local disk or in the bucket: the same tests run on both."""
    if request.param == "local":
        return Location.of(tmp_path / "store" / "ds")
    options = request.getfixturevalue("s3")
    return Location.of(f"s3://{BUCKET}/{request.node.name.replace('[', '-').rstrip(']')}/ds", options)


def test_a_location_is_a_folder_on_any_store(root):
    staged = root.child("_staging")
    assert not staged.exists() and staged.ls() == [] and staged.glob("b1-*") == []
    staged.child("b1-generate").write_bytes(b"one")
    (staged / "b1-grade").write_text("two")
    staged.child("b2-generate").write_bytes(b"three")
    assert staged.isdir() and staged.child("b1-generate").isfile()
    assert [e.name for e in staged.ls()] == ["b1-generate", "b1-grade", "b2-generate"]  # nothing partial left
    assert [e.name for e in staged.glob("b1-*")] == ["b1-generate", "b1-grade"]
    assert staged.child("b1-grade").read_text() == "two" and staged.ls()[0].read_bytes() == b"one"
    assert staged.ls()[0].uri == f"{root.uri}/_staging/b1-generate"
    staged.child("b1-generate").write_bytes(b"again")  # a rewrite replaces the whole file
    assert staged.child("b1-generate").read_bytes() == b"again"
    with pytest.raises(FileNotFoundError):
        staged.child("missing").read_bytes()
    with staged.child("nested", "file.bin").open("wb") as handle:
        handle.write(b"streamed")
    with staged.child("nested/file.bin").open("rb") as handle:
        assert handle.read() == b"streamed"
    for entry in staged.glob("b1-*"):
        entry.rm()
    staged.child("missing").rm()  # missing_ok
    staged.child("nested").rm(recursive=True)
    assert [e.name for e in staged.ls()] == ["b2-generate"]
    staged.child("b2-generate").rm()
    staged.rmdir_if_empty()
    assert not staged.exists()
    assert (root.local_path is None) == root.uri.startswith("s3://")


def test_put_dir_copies_a_local_folder_and_skips_unchanged_files(root, tmp_path):
    site = tmp_path / "site"
    (site / "static").mkdir(parents=True)
    (site / "index.html").write_text("<p>index</p>")
    (site / "static" / "style.css").write_text("p {}")
    seen: dict = {}
    docs = root.child("_data_docs")
    assert sorted(e.name for e in docs.put_dir(site, seen)) == ["index.html", "style.css"]
    (site / "b1.html").write_text("<p>b1</p>")
    assert [e.name for e in docs.put_dir(site, seen)] == ["b1.html"]  # the new page only
    assert docs.child("static", "style.css").read_text() == "p {}" and docs.child("b1.html").read_text() == "<p>b1</p>"


def test_staged_stages_index_and_embeddings_are_read_back_through_a_fresh_location(root):
    """What a rerun on another machine reads: a new Location, no cached listing, the same bytes."""
    from synthfactory.model.batch import BatchState
    from synthfactory.quality.dedup import NearDupIndex, write_version_index
    from synthfactory.quality.embed import read_version_embeddings, write_version_embeddings
    from synthfactory.run.staging import read_staged, write_staged

    state = BatchState("b1", 0, "generate", rows=[{"id": "r1", "text": "hello"}], status="passed")
    write_staged(root.child("_staging"), "b1-generate", state)
    texts = ["the quick brown fox jumps over the lazy dog today", "a completely different sentence about cats"]
    write_version_index(root.child("_index"), 1, texts, ["a", "b"], [1, 1])
    write_version_embeddings(root.child("_embeddings"), 1, ["a", "b"], np.eye(2, dtype=np.float32))

    again = Location.of(root.uri, root.options)
    assert read_staged(again.child("_staging"), "b1-generate") == state
    assert read_staged(again.child("_staging"), "b1-grade") is None
    record = json.loads(again.child("_staging", "b1-generate").read_bytes())  # the core's staging format
    assert record["format"] == "synthfactory-staging" and record["key"] == "b1-generate"
    index = NearDupIndex.load(again.child("_index"))
    assert [v.version for v in index.versions] == [1]
    found = index.screen(["the quick brown fox jumps over the lazy dog today", "nothing like the others here"],
                         ["x", "y"], [1, 1], keep=False)
    assert found[0] is not None and found[0][1] == "a" and found[1] is None
    assert read_version_embeddings(again.child("_embeddings"), 1).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert read_version_embeddings(again.child("_embeddings"), 2) is None


def test_a_version_on_s3_publishes_reads_back_and_gets_its_card_in_the_bucket(s3):
    from synthfactory.model.metadata import VersionMetadata
    from synthfactory.publish.card import write_card
    from synthfactory.store import DatasetStore

    store = DatasetStore(f"s3://{BUCKET}/published/tiny", s3)
    assert not store.exists() and store.versions() == []
    rows = [{name: None for name in ROW_SCHEMA.names} | {"id": f"r{i}", "text": f"row {i}", "version": 1}
            for i in range(3)]
    store.publish(rows, VersionMetadata.model_validate({**FIXTURE, "version": 1}))
    store.quarantine("run-1", 1, [])
    assert store.quarantine("run-1", 1, []) == 0  # idempotent per run: its commit is found in the bucket
    assert [(v.version, v.rows) for v in store.versions()] == [(1, 3)]
    assert sorted(store.read(1, columns=["id"]).column("id").to_pylist()) == ["r0", "r1", "r2"]
    card = write_card(store, 1)
    text = card.read_text()  # the card names the dataset and run its metadata records (the fixture's)
    assert card.uri == f"s3://{BUCKET}/published/tiny/_cards/v1/README.md" and FIXTURE["run_id"] in text
    plots = store.root.child("_cards", "v1").glob("*.png")
    assert len(plots) == 2 and all(plot.read_bytes().startswith(b"\x89PNG") for plot in plots)
    store.staging_path.child("b1-generate").write_bytes(b"x")
    store.staging_path.child("b9-generate").write_bytes(b"y")
    store.clear_staged(["b1"])
    assert [e.name for e in store.staging_path.ls()] == ["b9-generate"]


def test_an_unreachable_store_is_one_line_naming_it(tmp_path):
    """Nothing listens on the port: one StorageError line with the store and the cause, quickly."""
    options = s3_options(f"http://127.0.0.1:{free_port()}")  # a port nobody listens on
    started = time.perf_counter()
    with pytest.raises(StorageError) as err:
        Location.of(f"s3://{BUCKET}/ds", options).child("_staging", "b1-generate").write_bytes(b"x")
    took = time.perf_counter() - started
    message = str(err.value)
    assert message.startswith(f"store s3://{BUCKET}/ds/_staging/b1-generate: cannot write (") and "\n" not in message
    assert SECRET not in message and SECRET not in repr(options)  # no credential in the line or the options' repr
    assert err.value.exit_code == 1 and took < 60, took


def test_a_store_without_its_package_or_protocol_is_one_user_error():
    for uri, package in (("gs://bucket/ds", "gcsfs"), ("az://container/ds", "adlfs")):
        try:
            __import__(package)
        except ImportError:
            with pytest.raises(UserError, match=f"need the package {package}"):
                Location.of(uri, StorageOptions())
    with pytest.raises(UserError, match="not a store this machine can open"):
        Location.of("nosuch://bucket/ds", StorageOptions())


def test_a_local_write_leaves_no_partial_file_when_it_fails(tmp_path, monkeypatch):
    target = Location.of(tmp_path / "ds").child("_index", "v1.pkl")
    target.write_bytes(b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        target.write_bytes(b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in (tmp_path / "ds" / "_index").iterdir()] == ["v1.pkl"]
