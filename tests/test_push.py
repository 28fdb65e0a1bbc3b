"""Hub push hardening, without the network: what a commit deletes, which versions it refuses, and
the one line a 4xx from the Hub becomes (the error built by huggingface_hub from a real response)."""

from __future__ import annotations

import importlib

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.utils import HfHubHTTPError, hf_raise_for_status

from synthfactory.errors import UserError
from synthfactory.publish.hub import PushPlan, check_order, hub_error_line, stale_files

# the HTTP client huggingface_hub itself uses (httpx2 from huggingface_hub 2.x, httpx before)
http = importlib.import_module("httpx2") if importlib.util.find_spec("httpx2") else importlib.import_module("httpx")


def test_files_the_export_lacks_are_deleted_in_the_same_commit(tmp_path):
    exported = ["README.md", "data/train-bbbbbbbbbbbb.parquet", "score_histogram.png"]
    in_repo = [".gitattributes", "README.md", "data/train-aaaaaaaaaaaa.parquet", "old_plot.png"]
    assert stale_files(in_repo, exported) == ["data/train-aaaaaaaaaaaa.parquet", "old_plot.png"]
    for name in exported:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    plan = PushPlan(repo_id="org/tiny", version=2, tag="v2", folder=tmp_path, files=exported,
                    commit_message="m", private=False)
    operations = plan.operations(stale_files(in_repo, exported))
    assert sorted(op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)) == exported
    assert sorted(op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)) == [
        "data/train-aaaaaaaaaaaa.parquet", "old_plot.png"]


def test_an_older_version_than_the_newest_tag_is_refused_unless_forced():
    with pytest.raises(UserError, match=r"version 2 is older than its newest tag v3; .*--force"):
        check_order(2, ["v1", "v3", "release"], "org/tiny", force=False)
    check_order(2, ["v1", "v3"], "org/tiny", force=True)
    check_order(4, ["v1", "v3"], "org/tiny", force=False)
    check_order(1, [], "org/tiny", force=False)


@pytest.mark.parametrize("status, body, expected", [
    (403, {"error": "You are not authorized to push to this repo."},
     "push to org/tiny failed: HTTP 403 Forbidden: You are not authorized to push to this repo."),
    (412, {"error": "A commit has happened since. Please refresh and try again."},
     "push to org/tiny failed: HTTP 412 Precondition Failed: "
     "A commit has happened since. Please refresh and try again."),
    (429, {"error": "You have been rate-limited."},
     "push to org/tiny failed: HTTP 429 Too Many Requests: You have been rate-limited."),
    (400, {"error": "Invalid path in repo"}, "push to org/tiny failed: HTTP 400 Bad Request: Invalid path in repo"),
])
def test_a_4xx_from_the_hub_is_one_line_with_status_and_the_servers_message(status, body, expected):
    response = http.Response(status, json=body, headers={"x-request-id": "Root=1-abc"},
                             request=http.Request("POST", "https://huggingface.co/api/datasets/org/tiny/commit/main"))
    with pytest.raises(HfHubHTTPError) as caught:
        hf_raise_for_status(response)
    assert hub_error_line("org/tiny", caught.value) == expected
