"""The validation gate: a Great Expectations 1.x suite, kept as JSON in git, run on every batch."""

from __future__ import annotations

import difflib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from synthfactory.errors import RecipeError
from synthfactory.model.batch import BatchState
from synthfactory.model.lineage import ROW_SCHEMA
from synthfactory.storage import Location

log = logging.getLogger(__name__)


def load_suite_json(path: Path) -> dict[str, Any]:
    """Read a suite file: `{"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"validation.suite: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise RecipeError(f"validation.suite: {path} needs a list under 'expectations'")
    return data


def _why_invalid(exc: Exception) -> str:
    """GX's complaint about one expectation, in one line: pydantic's field errors, else the message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first: dict[str, str] = {}  # one message per field (a union field fails once per alternative)
        for error in errors():
            first.setdefault(".".join(str(part) for part in error["loc"]).replace("__root__", "kwargs"), error["msg"])
        return "; ".join(f"{field}: {msg}" for field, msg in first.items())
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def build_expectations(path: Path, specs: list[Any]) -> list[Any]:
    """Every expectation of a suite, built by GX, strictly. `gx.ExpectationSuite` given a dict it
    cannot build logs an ERROR and drops that expectation, so the check silently never gates a
    batch; here any expectation GX cannot build is a RecipeError naming the suite and it."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    built = []
    for number, spec in enumerate(specs, start=1):
        kind = spec.get("type") if isinstance(spec, dict) else None
        where = f"validation.suite: {path}: expectation {number}"
        if not isinstance(kind, str):
            raise RecipeError(f"{where} needs a 'type' (and 'kwargs'): {json.dumps(spec, default=str)[:200]}")
        known = list_registered_expectation_implementations()
        if kind not in known:
            close = difflib.get_close_matches(kind.lower(), known, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]!r}?" if close else "; see https://greatexpectations.io/expectations/"
            raise RecipeError(f"{where} {kind!r}: Great Expectations {gx.__version__} has no such expectation{hint}")
        try:
            built.append(ExpectationConfiguration(**{"kwargs": {}, **spec}).to_domain_obj())
        except Exception as exc:  # pydantic, TypeError or GX's own: all mean the suite file is wrong
            raise RecipeError(f"{where} {kind!r}: {_why_invalid(exc)}") from None
    return built


DOCS_SITE = "synthfactory"


def failed_with_rows(states: list[BatchState]) -> list[str]:
    """The batches whose rows their suite failed: what `validation.on_failure: fail` stops a run for.
    A batch that kept no row is quarantined with its suite's result too, but not listed: its rows
    left before the suite (verify, screen, judge), each with its reason, and every shipped suite
    fails an empty table (row count at least 1, min/max/mean of nothing): the math recipe keeps
    about 1 row in 10, so in batches of 16 nearly every run has a batch that keeps none. A run
    where no batch kept a row still stops: nothing to publish."""
    return [s.batch_id for s in states
            if s.status == "quarantined" and any(r.get("stage") == "validate" for r in s.quarantined)]


class SuiteGate:
    """One ephemeral GX context and suite per run; `validate` is safe to call from many threads.

    With `docs_dir`, every failing batch gets its page in a GX Data Docs site there (the same
    static site `context.build_data_docs()` writes: `index.html` plus one page per result), and
    the outcome carries that page's URL. On an object store GX writes the site to a temporary
    folder and each new page is uploaded (`Location.put_dir`), its URL the store's.
    """

    def __init__(self, suite_path: Path, docs_dir: Path | Location | None = None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every in-memory batch (md5 of hash_pandas_object) for its batch markers,
        # ~0.4 s per million rows on every validate; frames above HASH_THRESHOLD bytes skip it. The
        # fingerprint plays no part in the results, and each batch is validated once: skip it always.
        pandas_execution_engine.HASH_THRESHOLD = 0

        data = load_suite_json(suite_path)
        expectations = build_expectations(suite_path, data["expectations"])  # a bad suite fails first, fast
        self.suite_path = suite_path
        # GX pins this module's logger at INFO, so every run would print a line about the temporary
        # folder of its ephemeral docs site on the user's console
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        try:
            self.suite = gx.ExpectationSuite(
                name=data.get("name") or suite_path.stem, expectations=expectations, meta=data.get("meta"),
            )
        except Exception as exc:  # GX raises several types for a bad suite; all are user errors
            raise RecipeError(f"validation.suite: {suite_path}: {str(exc).splitlines()[0]}") from None
        if len(self.suite.expectations) != len(expectations):  # GX drops what it cannot add, with a log line
            raise RecipeError(f"validation.suite: {suite_path}: Great Expectations kept "
                              f"{len(self.suite.expectations)} of its {len(expectations)} expectations")
        source = self._context.data_sources.add_pandas("synthfactory")
        self._batch_definition = source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")
        self._lock = threading.Lock()
        self.docs_dir = docs_dir
        self._upload: Location | None = None  # an object store's docs folder; GX writes to a temp folder
        self._uploaded: dict[str, tuple[int, int]] = {}
        if docs_dir is not None:
            local = Location.of(docs_dir).local_path
            if local is None:
                import tempfile

                self._upload = Location.of(docs_dir)
                self._site = tempfile.TemporaryDirectory(prefix="synthfactory-data-docs-")
                local = Path(self._site.name)
            self._context.add_data_docs_site(DOCS_SITE, {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(local)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            })

    def validate(self, rows: list[dict[str, Any]], batch_id: str | None = None) -> dict[str, Any]:
        """GX result for the rows a batch would publish, reduced to what reports need. A batch that
        kept no row goes through the suite too, as an empty table (`empty_frame`): its expectations
        decide (the shipped suites' row count of at least 1 fails it)."""
        return self.validate_frame(pd.DataFrame(rows) if rows else self.empty_frame(), batch_id)

    def empty_frame(self) -> pd.DataFrame:
        """No rows, with the published schema's columns (typed) and every column the suite names:
        GX cannot evaluate an expectation on a column that does not exist, so a batch with no row
        would fail on errors instead of on what the suite says about an empty batch."""
        frame = ROW_SCHEMA.empty_table().to_pandas()
        for expectation in self.suite.expectations:
            kwargs = expectation.configuration.kwargs
            named = [kwargs.get(key) for key in ("column", "column_A", "column_B")]
            named += list(kwargs.get("column_list") or [])
            for column in named:
                if isinstance(column, str) and column not in frame:
                    frame[column] = pd.Series(dtype=object)
        return frame

    def validate_frame(self, frame: pd.DataFrame, batch_id: str | None = None) -> dict[str, Any]:
        docs_url = None
        with self._lock:
            batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(self.suite)
            if not result.success and self.docs_dir is not None:
                docs_url = self._data_docs_page(result, batch_id or "batch")
        failed = [
            f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
            for r in result.results if not r.success
        ]
        return {
            "success": bool(result.success),
            "suite": self.suite.name,
            "statistics": {k: float(v) if v is not None else None for k, v in result.statistics.items()},
            "failed_expectations": failed,
            "result": json.loads(json.dumps(result.to_json_dict(), default=str)),
            "data_docs_url": docs_url,
        }

    def _data_docs_page(self, result: Any, batch_id: str) -> str | None:
        """Store the result in the context and render its Data Docs page; the page's file:// URL."""
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=self.suite.name),
                                         run_id="synthfactory", batch_identifier=batch_id)
        try:
            self._context.validation_results_store.set(key, result)
            self._context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=[key])
            urls = self._context.get_docs_sites_urls(resource_identifier=key, site_name=DOCS_SITE)
            url = urls[0]["site_url"] if urls else None
            if self._upload is not None:  # the new page (and the site's index and assets, once) to the store
                self._upload.put_dir(self._site.name, seen=self._uploaded)
                if url:
                    url = f"{self._upload.uri}/{Path(url.removeprefix('file://')).relative_to(self._site.name).as_posix()}"
        except Exception as exc:  # the report loses a link, the batch keeps its verdict
            log.warning("Data Docs for batch %s not written: %s", batch_id, exc)
            return None
        return url
