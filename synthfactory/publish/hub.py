"""Hub publishing: export a version in the Hub's layout, push it as one commit plus a `vN` tag,
and diff two versions.

    synthfactory export store/quickstart --version 2 --to out/quickstart-v2 [--format hub|jsonl|messages|sharegpt|dpo]
    synthfactory push store/quickstart --version 2 --repo my-org/quickstart [--format ...] [--private] [--dry-run]
    synthfactory diff store/quickstart 1 2
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthfactory.errors import UserError
from synthfactory.model.lineage import stable_hash
from synthfactory.model.metadata import VersionMetadata
from synthfactory.publish.card import write_card
from synthfactory.publish.formats import convert, write_rows
from synthfactory.quality.embed import frechet_distance, read_version_embeddings
from synthfactory.store import DatasetStore


def _store(uri: str | Path) -> DatasetStore:
    store = DatasetStore(uri)
    if not store.exists():
        raise UserError(f"{uri}: no published dataset here (run a recipe first)")
    return store


def export_version(uri: str | Path, version: int, out_dir: Path, repo_id: str | None = None,
                   fmt: str = "hub") -> Path:
    """A Hub-layout folder: README.md (card), plots, and the rows under data/ in the layout `fmt`
    (`formats.FORMATS`; `hub`: exactly the rows `load_dataset_version(uri, version)` returns).
    Replaces what an earlier export left there."""
    store = _store(uri)
    table = store.read(version)  # raises naming the versions there are
    meta = next(v.metadata for v in store.versions() if v.version == version)
    table = convert(table, fmt, meta)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not (out_dir / "README.md").exists() and any(out_dir.iterdir()):
            raise UserError(f"--to {out_dir}: folder exists and is not an export; choose an empty or new folder")
        shutil.rmtree(out_dir)
    (out_dir / "data").mkdir(parents=True)
    data_file = write_rows(table, fmt, out_dir, stable_hash(meta.run_id, version, fmt, length=12))
    write_card(store, version, out_dir, repo_id=repo_id, layout=(fmt, data_file, table.column_names))
    return out_dir


@dataclass
class PushPlan:
    """Everything `push` will send, decided before any network call."""

    repo_id: str
    version: int
    tag: str
    folder: Path
    files: list[str]  # paths in the repo, each uploaded from folder / path
    commit_message: str
    private: bool

    def operations(self, delete: list[str] | None = None) -> list[Any]:
        """Every file of the export added, and `delete` (what the repo has that the export lacks)
        removed, in the same commit."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        return ([CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(self.folder / f)) for f in self.files]
                + [CommitOperationDelete(path_in_repo=f) for f in delete or []])


KEEP_IN_REPO = {".gitattributes"}


def stale_files(in_repo: list[str], exported: list[str]) -> list[str]:
    """Files the repo holds that this export does not: an older `data/*.parquet` would otherwise be
    read by the `data/*.parquet` glob of every later tag. The repo's own `.gitattributes` stays."""
    keep = set(exported) | KEEP_IN_REPO
    return sorted(f for f in in_repo if f not in keep)


def check_order(version: int, tags: list[str], repo_id: str, force: bool) -> None:
    """Refuse to push a version older than the newest `vN` tag (the commit would move `main` back
    to older rows) unless `force`."""
    newest = max((int(t[1:]) for t in tags if t[:1] == "v" and t[1:].isdigit()), default=0)
    if version < newest and not force:
        raise UserError(f"push {repo_id}: version {version} is older than its newest tag v{newest}; pushing it "
                        "would move main back to older rows (pass --force to do it anyway)")


def hub_error_line(repo_id: str, exc: Exception) -> str:
    """One line with the HTTP status and the server's own message (huggingface_hub's text starts
    with the request id and puts the message last)."""
    response = getattr(exc, "response", None)
    status = f"HTTP {response.status_code} {response.reason_phrase}".strip() if response is not None else ""
    message = getattr(exc, "server_message", None) or next(
        (line for line in str(exc).splitlines() if line.strip() and not line.startswith("(Request ID")), "")
    return f"push to {repo_id} failed: " + ": ".join(p for p in (status, " ".join(message.split())) if p)


def plan_push(uri: str | Path, version: int, repo_id: str, work_dir: Path, private: bool = False,
              fmt: str = "hub") -> PushPlan:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UserError(f"--repo {repo_id!r}: expected ORG/NAME")
    folder = export_version(uri, version, work_dir, repo_id=repo_id, fmt=fmt)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    meta = next(v.metadata for v in _store(uri).versions() if v.version == version)
    return PushPlan(repo_id=repo_id, version=version, tag=f"v{version}", folder=folder, files=files,
                    commit_message=f"synthfactory: {meta.dataset} version {version} (run {meta.run_id})",
                    private=private)


def push(plan: PushPlan, token: str | None = None, force: bool = False) -> str:
    """Upload the export in ONE commit on top of the repo's current head (compare-and-swap via
    `parent_commit`), deleting what the export does not contain, then tag it `vN`. A version
    already tagged is left alone; one older than the newest tag is refused unless `force`. The
    token comes from HF_TOKEN or the Hugging Face cache (huggingface_hub's usual lookup) and is
    never printed."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(plan.repo_id, repo_type="dataset", private=plan.private, exist_ok=True)
        tags = [tag.name for tag in api.list_repo_refs(plan.repo_id, repo_type="dataset").tags]
        if plan.tag in tags:
            return f"{plan.repo_id}@{plan.tag} already exists; nothing pushed"
        check_order(plan.version, tags, plan.repo_id, force)
        head = api.repo_info(plan.repo_id, repo_type="dataset").sha
        stale = stale_files(api.list_repo_files(plan.repo_id, repo_type="dataset", revision=head), plan.files)
        commit = api.create_commit(plan.repo_id, operations=plan.operations(stale), commit_message=plan.commit_message,
                                   repo_type="dataset", parent_commit=head)
        api.create_tag(plan.repo_id, tag=plan.tag, revision=commit.oid, repo_type="dataset",
                       tag_message=plan.commit_message)
    except HfHubHTTPError as exc:  # one line, never the token (the errors do not carry request headers)
        raise UserError(hub_error_line(plan.repo_id, exc)) from None
    return (f"pushed {len(plan.files)} files to {plan.repo_id} in commit {commit.oid[:12]}"
            + (f" (deleted {len(stale)} the export does not contain)" if stale else "") + f", tagged {plan.tag}")


def diff_versions(uri: str | Path, a: int, b: int) -> dict[str, Any]:
    """Rows added/removed between the snapshots of versions a and b, metric deltas, and the drift
    (Fréchet distance) between the embeddings of the rows each version added."""
    store = _store(uri)
    infos = {v.version: v for v in store.versions()}
    for version in (a, b):
        if version not in infos:
            raise UserError(f"{uri}: no version {version}; versions are {sorted(infos)}")
    ids_a = set(store.read(a, columns=["id"]).column("id").to_pylist())
    ids_b = set(store.read(b, columns=["id"]).column("id").to_pylist())
    meta_a, meta_b = infos[a].metadata, infos[b].metadata
    head_a, head_b = _headline(meta_a), _headline(meta_b)
    metrics = {key: _delta(head_a[key], head_b[key]) for key in head_a}
    quality_a, quality_b = (m.quality.measured() if m.quality else {} for m in (meta_a, meta_b))
    for key in sorted({*quality_a, *quality_b}):
        metrics[f"quality.{key}"] = _delta(quality_a.get(key), quality_b.get(key))
    emb_a = read_version_embeddings(store.embeddings_path, a)
    emb_b = read_version_embeddings(store.embeddings_path, b)
    drift = frechet_distance(emb_a, emb_b) if emb_a is not None and emb_b is not None else None
    return {"dataset": store.uri, "a": a, "b": b, "rows_a": len(ids_a), "rows_b": len(ids_b),
            "rows_added": len(ids_b - ids_a), "rows_removed": len(ids_a - ids_b), "metrics": metrics,
            "drift_frechet": drift}


def _headline(meta: VersionMetadata) -> dict[str, Any]:
    """The counts and scores `diff` compares before the quality metrics, by the name it prints."""
    return {"accepted": meta.totals.accepted, "acceptance_rate": meta.acceptance_rate, "mean_score": meta.mean_score,
            "generated": meta.totals.generated, "rejected": meta.totals.rejected,
            "quarantined": meta.totals.quarantined}


def _delta(x: Any, y: Any) -> dict[str, Any]:
    numeric = isinstance(x, (int, float)) and isinstance(y, (int, float))
    return {"a": x, "b": y, "delta": (y - x) if numeric else None}
