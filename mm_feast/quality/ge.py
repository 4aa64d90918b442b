"""Great Expectations 1.x, used directly (Feast's ``feast.dqm`` needs GE 0.x: DESIGN defect 9).

One validation per batch: the caller hands over a DataFrame of per-item or per-row facts and gets
back which rows failed which expectation, with the observed values. GE is imported on first use
(about 5 s), runs in an ephemeral context with no network or analytics, and stores its results
and Data Docs under ``<repo>/data/quality/`` so they survive the process.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from mm_feast.quality.suites import ExpectationSpec, SuiteError

logger = logging.getLogger(__name__)

ROW_ID = "row_id"
DATASOURCE = "mm_feast"
DOCS_SITE = "mm_feast"
_SEVERITY = {"block": "critical", "warn": "warning"}


def quality_dir(repo_path: Optional[Path]) -> Optional[Path]:
    return Path(repo_path) / "data" / "quality" if repo_path is not None else None


def docs_index(repo_path: Optional[Path]) -> Optional[Path]:
    base = quality_dir(repo_path)
    return base / "data_docs" / "index.html" if base is not None else None


def plain(value: Any) -> Any:
    """JSON-safe scalar: numpy numbers to Python, NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def unique_ids(labels: Sequence[str]) -> list[str]:
    """Readable row ids (item ids, segment ids, entity keys) made unique with ``~n`` suffixes, so
    reports and Data Docs name the rows that failed."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        count = seen.get(label, 0)
        seen[label] = count + 1
        out.append(label if count == 0 else f"{label}~{count + 1}")
    return out


@dataclass
class Failure:
    """One expectation that failed on a batch; ``rows`` maps row ids to their observed values,
    and is None for a batch-level expectation (a mean, a rate), which concerns every row."""

    expectation: str
    severity: str
    expected: str
    observed: Any = None
    rows: Optional[dict[str, Any]] = None
    column: str = ""
    message: str = ""

    def observed_for(self, row_id: str) -> Any:
        return self.observed if self.rows is None else self.rows.get(row_id)

    def reason(self, row_id: str) -> str:
        observed = self.observed_for(row_id)
        what = f"{self.column}={observed!r}" if self.column else repr(observed)
        scope = "" if self.rows is not None else " (batch-level)"
        head = f"{self.message}: " if self.message else ""
        return f"{head}{self.expectation} failed{scope}: {what}, expected {self.expected}"

    def summary(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation, "severity": self.severity, "expected": self.expected,
            "column": self.column, "observed": plain(self.observed),
            "rows": None if self.rows is None else len(self.rows),
            "examples": None if self.rows is None else plain(dict(list(self.rows.items())[:5])),
        }


@dataclass
class Validation:
    """The outcome of one suite on one batch."""

    suite: str
    stage: str
    rows: int
    success: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    result_path: str = ""
    docs_path: str = ""

    @property
    def blocking(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "block"]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "warn"]

    def summary(self) -> dict[str, Any]:
        return {
            "suite": self.suite, "stage": self.stage, "rows": self.rows, "success": self.success,
            "evaluated": self.evaluated, "skipped": self.skipped, "seconds": round(self.seconds, 3),
            "failures": [f.summary() for f in self.failures], "result_path": self.result_path,
            "docs_path": self.docs_path,
        }


def _class_name(expect: str) -> str:
    if re.fullmatch(r"[a-z0-9_]+", expect):
        return "".join(part.capitalize() for part in expect.split("_"))
    return expect


class _Runner:
    """The process-wide GE context for one repo (results and docs under its data/quality)."""

    def __init__(self, repo_path: Optional[Path]):
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self.gx = gx
        base = quality_dir(repo_path)
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
        )
        config.progress_bars = ProgressBarsConfig(globally=False)
        self.docs = False
        if base is not None:
            backend = {"class_name": "TupleFilesystemStoreBackend"}
            config.stores["validation_results_store"] = {
                "class_name": "ValidationResultsStore",
                "store_backend": {**backend, "base_directory": str(base / "validations")},
            }
            config.data_docs_sites = {
                DOCS_SITE: {
                    "class_name": "SiteBuilder",
                    "store_backend": {**backend, "base_directory": str(base / "data_docs")},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                }
            }
            self.docs = True
        self.base = base
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        self.source = self.context.data_sources.add_or_update_pandas(DATASOURCE)
        self.assets: dict[str, Any] = {}

    def _batch_definition(self, asset_name: str) -> Any:
        if asset_name not in self.assets:
            asset = self.source.add_dataframe_asset(asset_name)
            self.assets[asset_name] = asset.add_batch_definition_whole_dataframe("batch")
        return self.assets[asset_name]

    def expectation(self, spec: ExpectationSpec, variables: Mapping[str, Any]) -> Any:
        cls = getattr(self.gx.expectations, _class_name(spec.expect), None)
        if cls is None:
            raise SuiteError(f"{spec.origin}: expectation '{spec.name}' names {spec.expect!r}, which is not a "
                             "Great Expectations 1.x expectation (e.g. ExpectColumnValuesToBeBetween)")
        try:
            return cls(**spec.resolved_kwargs(variables), severity=_SEVERITY[spec.severity],
                       meta={"name": spec.name}, description=spec.description or None)
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"{spec.origin}: expectation '{spec.name}' ({spec.expect}): {exc}") from exc

    def run(self, frame: pd.DataFrame, suite_name: str, asset_name: str, expectations: list[Any],
            run_name: str, data_docs: bool) -> tuple[Any, str, str]:
        gx = self.gx
        suite = self.context.suites.add_or_update(gx.ExpectationSuite(name=suite_name, expectations=expectations))
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"{suite_name}@{asset_name}", data=self._batch_definition(asset_name), suite=suite)
        )
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])] if data_docs and self.docs else []
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{suite_name}@{asset_name}",
                validation_definitions=[definition],
                actions=actions,
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
            )
        )
        run_id = gx.RunIdentifier(run_name=ge_run_name(run_name), run_time=datetime.now(timezone.utc))
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
        identifier, validation = next(iter(result.run_results.items()))
        result_path = docs_path = ""
        if self.base is not None:
            parts = identifier.to_tuple()
            result_path = str(self.base.joinpath("validations", *parts[:-1], f"{parts[-1]}.json"))
            if actions:
                docs_path = str(self.base.joinpath("data_docs", "validations", *parts[:-1], f"{parts[-1]}.html"))
        return validation, result_path, docs_path


def ge_run_name(run_id: str) -> str:
    """The name GE gets for a run: ``run-<id>``, which dateutil never reads as a date.

    GE 1.x parses a run name as a date (for the run time when none is given, and again for each
    data-docs page title). A hex run id such as "039208192316" became year 392, so its data docs
    went to another path; "0a8679395089" raised OverflowError (tests/test_quality_embeddings.py).
    """
    return f"run-{run_id}"


_RUNNERS: dict[Optional[str], _Runner] = {}
_LOCK = threading.Lock()


def _runner(repo_path: Optional[Path]) -> _Runner:
    key = str(Path(repo_path).resolve()) if repo_path is not None else None
    runner = _RUNNERS.get(key)
    if runner is None:
        started = time.perf_counter()
        runner = _Runner(Path(key) if key else None)
        _RUNNERS[key] = runner
        logger.info("Great Expectations context ready in %.1fs", time.perf_counter() - started)
    return runner


def _row_observations(result: Any, columns: Sequence[str]) -> Optional[dict[str, Any]]:
    """Row id -> observed value(s) for a column-map expectation; None when it is batch-level."""
    index_list = result.result.get("unexpected_index_list")
    if index_list is None:
        return None
    rows: dict[str, Any] = {}
    for entry in index_list:
        values = {c: plain(entry.get(c)) for c in columns if c in entry}
        rows[str(entry[ROW_ID])] = next(iter(values.values())) if len(values) == 1 else values
    return rows


def validate(
    frame: pd.DataFrame,
    specs: Sequence[ExpectationSpec],
    *,
    suite_name: str,
    stage: str,
    run_name: str,
    repo_path: Optional[Path] = None,
    variables: Optional[Mapping[str, Any]] = None,
    unavailable: Sequence[str] = (),
    data_docs: bool = True,
) -> Validation:
    """Run ``specs`` on ``frame`` (one row per item/segment, ids in ``row_id``) in one GE call.

    Expectations on a column listed in ``unavailable`` (e.g. drift before a reference exists) are
    skipped and reported as such, never silently passed.
    """
    variables = dict(variables or {})
    if frame.empty:
        return Validation(suite=suite_name, stage=stage, rows=0, success=True, evaluated=0)
    if ROW_ID not in frame.columns or not frame[ROW_ID].is_unique:
        raise ValueError(f"validation frame for {suite_name} needs unique '{ROW_ID}' values")
    active = [s for s in specs if not set(s.columns) & set(unavailable)]
    skipped = [s.name for s in specs if s not in active]
    with _LOCK:
        runner = _runner(repo_path)  # GE import and context: once per process, not timed per batch
        started = time.perf_counter()
        expectations = [runner.expectation(s, variables) for s in active]
        by_name = {s.name: s for s in active}
        result, result_path, docs_path = runner.run(frame, suite_name, f"{suite_name}.{stage}", expectations, run_name, data_docs)
    failures = []
    for item in result.results:
        if item.success:
            continue
        name = (item.expectation_config.meta or {}).get("name", item.expectation_config.type)
        spec = by_name[name]
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise SuiteError(f"{spec.origin}: expectation '{name}' could not run on {suite_name}: "
                             f"{item.exception_info.get('exception_message')}")
        failures.append(
            Failure(
                expectation=name,
                severity=spec.severity,
                expected=spec.expected_text(variables),
                observed=plain(item.result.get("observed_value")),
                rows=_row_observations(item, spec.columns),
                column=spec.column,
                message=spec.message,
            )
        )
    order = {s.name: i for i, s in enumerate(active)}
    failures.sort(key=lambda f: order[f.expectation])  # suite order: reasons read the same every run
    seconds = time.perf_counter() - started
    logger.info("%s %s: %d rows, %d expectations, %d failed, in %.2fs", suite_name, stage, len(frame),
                len(active), len(failures), seconds)
    return Validation(
        suite=suite_name, stage=stage, rows=len(frame), success=not any(f.severity == "block" for f in failures),
        evaluated=len(active), failures=failures, skipped=skipped, seconds=seconds,
        result_path=result_path, docs_path=docs_path,
    )
