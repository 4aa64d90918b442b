"""The quality gates as ingest runs them: media before segmentation, embeddings before the write.

``IngestGate`` is what ``mm_feast.ingest`` calls; it turns GE validations into per-item decisions
(blocked → quarantine, warned → ingested and reported) and writes the run's report, Data Docs and,
on a source's first admitted batch, its drift reference.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mm_feast.quality.embedding_gates import (
    Reference,
    build_reference,
    embedding_stats,
    load_reference,
    save_reference,
)
from mm_feast.quality.ge import Failure, Validation, plain, unique_ids, validate
from mm_feast.quality.media_gates import ProbeFn, media_frame
from mm_feast.quality.reports import compact, run_report, write_report
from mm_feast.quality.suites import Suite, load_suite
from mm_feast.stores.quarantine import QuarantineBook
from mm_feast.sources import EmbeddingSource, ManifestRow

logger = logging.getLogger(__name__)


@dataclass
class GateFailure:
    """Why one item (or pushed row) is held back: which expectations, what was seen, where."""

    stage: str
    expectations: list[str]
    observed: dict[str, Any]
    locator: str
    reason: str
    rows: int = 0  # stored rows withheld with it (an item's segments)

    def details(self) -> dict[str, str]:
        """The extra fields of a quarantine record."""
        return {
            "expectations": ",".join(self.expectations),
            "observed": json.dumps(plain(self.observed), default=str),
            "locator": self.locator,
        }


@dataclass
class Decisions:
    blocked: dict[str, GateFailure] = field(default_factory=dict)
    overridden: list[dict[str, Any]] = field(default_factory=list)


def decide(
    validation: Validation,
    stage: str,
    groups: Mapping[str, Sequence[str]],
    locators: Mapping[str, str],
    admitted: Optional[Mapping[str, set[str]]] = None,
) -> Decisions:
    """Per group (an item and its segment rows): blocked when a blocking expectation failed on
    any of its rows, or on the whole batch, unless a release --admit covers that expectation."""
    out = Decisions()
    for group, row_ids in groups.items():
        hits: list[tuple[Failure, str]] = []
        for failure in validation.blocking:
            failing = list(row_ids) if failure.rows is None else [r for r in row_ids if r in failure.rows]
            if failing:
                hits.append((failure, failing[0]))
        allowed = (admitted or {}).get(group, set())
        kept = [(f, r) for f, r in hits if f.expectation not in allowed]
        for failure, row in hits:
            if failure.expectation in allowed:
                out.overridden.append({"group": group, "expectation": failure.expectation,
                                       "observed": failure.observed_for(row)})
        if not kept:
            continue
        failing_rows = sorted({r for f, _ in kept for r in (row_ids if f.rows is None else set(row_ids) & set(f.rows))})
        out.blocked[group] = GateFailure(
            stage=stage,
            expectations=[f.expectation for f, _ in kept],
            observed={f.expectation: f.observed_for(r) for f, r in kept},
            locator="; ".join(dict.fromkeys(locators.get(r, r) for r in failing_rows)),
            reason="; ".join(f.reason(r) for f, r in kept),
            rows=len(row_ids),
        )
    return out


def view_name(source: EmbeddingSource) -> str:
    """The feature view a source feeds (``views.py`` names sources ``<view>_source``)."""
    return source.name.removesuffix("_source")


def suite_for(source: EmbeddingSource, repo_path: Optional[Path]) -> Suite:
    return load_suite(repo_path, [source.media.name, view_name(source), source.name], suite_name=source.name)


def suite_for_view(view: Any, repo_path: Optional[Path]) -> tuple[Suite, str]:
    """A feature view's suite and the name its drift reference is stored under: the same as its
    EmbeddingSource's when it has one, so pushed rows are judged like ingested ones."""
    source = getattr(view, "batch_source", None)
    if isinstance(source, EmbeddingSource):
        return suite_for(source, repo_path), source.name
    return load_suite(repo_path, [view.name], suite_name=view.name), view.name


def warning_line(where: str, failure: Failure, row_id: str) -> str:
    """One row's failed "warn" expectation as the run summary shows it: "where: why"."""
    return f"{where}: {failure.reason(row_id)}"


@dataclass
class MediaCheck:
    """The media gate's verdict on a batch: rows passed (in order), rows blocked with why, and
    the "uri: why" lines of the "warn" expectations each row failed (keyed by ``id(row)``)."""

    passed: list[ManifestRow]
    blocked: list[tuple[ManifestRow, GateFailure]]
    warnings: dict[int, list[str]]


class IngestGate:
    """Both gates for one ingest run of one embedding source."""

    def __init__(self, source: EmbeddingSource, repo_path: Optional[Path], run_id: str, model_version: str, expected_dim: int):
        self.source = source
        self.repo_path = repo_path
        self.run_id = run_id
        self.model_version = model_version
        self.expected_dim = int(expected_dim)
        self.suite = suite_for(source, repo_path)
        self.book = QuarantineBook(repo_path, source.name, model_version)
        self.validations: list[Validation] = []
        self.overridden: list[dict[str, Any]] = []
        self._reference: Optional[Reference] = load_reference(repo_path, source.name, model_version)
        self._new_reference: Optional[Reference] = None
        self.data_docs = bool(self.suite.options.get("data_docs", True))
        self._where: dict[str, dict[str, str]] = {}  # stage -> row id -> uri or locator

    def held(self, row: ManifestRow) -> bool:
        """Still quarantined from an earlier run (same content): counted, not decoded again."""
        return self.book.is_held(row.item_id, row.sha256)

    def admitted(self, row: ManifestRow) -> set[str]:
        """Expectations (or content filters) a ``quarantine release --admit`` waived for this content."""
        return self.book.admitted(row.item_id, row.sha256)

    def _admitted(self, pairs: Mapping[str, tuple[str, str]]) -> dict[str, set[str]]:
        return {group: names for group, key in pairs.items() if (names := self.book.admitted(*key))}

    def _validate(self, frame: Any, specs: Any, stage: str, unavailable: Sequence[str] = (), variables: Optional[dict] = None) -> Validation:
        validation = validate(
            frame, specs, suite_name=f"{self.source.name}.{stage}", stage=stage, run_name=self.run_id,
            repo_path=self.repo_path, variables=variables, unavailable=unavailable, data_docs=self.data_docs,
        )
        self.validations.append(validation)
        return validation

    def check_media(self, rows: list[ManifestRow], probe: Optional[ProbeFn] = None) -> MediaCheck:
        """Hook before segmentation: probe every item, validate once, split passed from blocked.

        Rows that could not even be read pass through untouched: ingest quarantines them at the
        read stage with the reader's error."""
        readable = [r for r in rows if not r.error]
        specs = self.suite.for_media(self.source.modality)
        if not readable or not specs:
            return MediaCheck(rows, [], {})
        frame = media_frame(readable, self.source.modality, probe)
        variables = {"max_pixels": self.source.segmentation.max_pixels}
        validation = self._validate(frame, specs, "media", variables=variables)
        ids = list(frame["row_id"])
        decisions = decide(
            validation, "media_gate", {r: [r] for r in ids}, dict(zip(ids, frame["uri"])),
            self._admitted({rid: (row.item_id, row.sha256) for rid, row in zip(ids, readable)}),
        )
        self.overridden += decisions.overridden
        by_id = dict(zip(ids, readable))
        blocked = [(by_id[rid], failure) for rid, failure in decisions.blocked.items()]
        blocked_ids = {id(row) for row, _ in blocked}
        warned: dict[int, list[str]] = defaultdict(list)
        for failure in validation.warnings:
            for rid in failure.rows or {}:
                warned[id(by_id[rid])].append(warning_line(by_id[rid].uri, failure, rid))
        return MediaCheck([r for r in rows if id(r) not in blocked_ids], blocked, dict(warned))

    def check_embeddings(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, GateFailure]]:
        """Hook after encoding, before the parquet append: an item with any blocked segment row
        is withheld whole (a partial item would be pooled from a subset and never completed)."""
        if not rows or not self.suite.embeddings:
            return rows, {}
        ids = unique_ids([str(r.get("segment_id") or r["item_id"]) for r in rows])
        references = {self.model_version: self._reference} if self._reference else {}
        stats = embedding_stats(ids, [r["embedding"] for r in rows], self.expected_dim,
                                [r.get("model_version", self.model_version) for r in rows], references)
        validation = self._validate(stats.frame, self.suite.embeddings, "embeddings", stats.unavailable,
                                    {"expected_dim": self.expected_dim})
        groups: dict[str, list[str]] = defaultdict(list)
        for rid, row in zip(ids, rows):
            groups[row["item_id"]].append(rid)
        locators = {rid: f"{row['uri']}#{row.get('position', '')}" for rid, row in zip(ids, rows)}
        self._where["embeddings"] = locators
        shas = {row["item_id"]: row["sha256"] for row in rows}
        decisions = decide(validation, "embedding_gate", groups, locators,
                           self._admitted({item: (item, sha) for item, sha in shas.items()}))
        self.overridden += decisions.overridden
        kept = [row for row in rows if row["item_id"] not in decisions.blocked]
        if self._reference is None:
            usable = [np.asarray(r["embedding"], dtype=np.float64) for r, ok in zip(rows, stats.comparable)
                      if ok and r["item_id"] not in decisions.blocked]
            if usable and len(usable) >= int(self.suite.options.get("drift_reference_min_rows", 8)):
                self._new_reference = build_reference(self.source.name, self.model_version, np.stack(usable), self.run_id)
        return kept, decisions.blocked

    def warning_lines(self) -> list[str]:
        """Every "warn" expectation that failed, as "where: why" lines for the run summary
        (a PNG named .jpg, CMYK or palette images, variable frame rate, ...), except the media
        gate's per-item ones: those travel with their items (``MediaCheck.warnings``), so a
        resumed run repeats the warnings of the items a killed run had finished."""
        lines: list[str] = []
        for validation in self.validations:
            where = self._where.get(validation.stage, {})
            for failure in validation.warnings:
                if failure.rows is None:
                    lines.append(f"{self.source.name} ({validation.stage}): {failure.reason('')}")
                elif validation.stage != "media":
                    lines += [warning_line(where.get(r, r), failure, r) for r in failure.rows]
        return lines

    def finish(self) -> dict[str, Any]:
        """After the write: store the drift reference (first admitted batch only) and the run report."""
        if self._new_reference is not None:
            save_reference(self.repo_path, self._new_reference)
        if not self.validations:
            return {}
        report = run_report(self.source.name, self.run_id, self.suite.version, self.suite.files,
                            self.validations, self.overridden, self.repo_path)
        write_report(self.repo_path, report)
        return compact(report)
