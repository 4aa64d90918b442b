"""Lineage records: what one served vector was made from, by which model, code and run.

Plain dataclasses, independent of the database, so the recorder, the queries and the CLI
share one vocabulary. A record's parents are either raw file positions (``role="raw"``) or
other embeddings (``role`` = ``segment``/``anchor``/``context``) that have records of their own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

RAW = "raw"  # parent is a position in a raw file
KINDS = ("segment", "item", "fused")


def record_key(project: str, source: str, entity_key: str, lineage_id: str) -> str:
    """Primary key of a record: one embedding row of one source in one project."""
    return hashlib.sha256(f"{project}|{source}|{entity_key}|{lineage_id}".encode()).hexdigest()[:32]


def _set(value: Any) -> bool:
    """Locator columns use -1 (or NaN) for "not set" (Milvus 2.3 has no nullable scalars)."""
    return value is not None and value == value and value >= 0


@dataclass(frozen=True)
class ParentRef:
    """One input of an embedding: a raw file position, or another embedding (and its position)."""

    ordinal: int
    role: str
    uri: str
    sha256: str
    modality: str
    position: str
    start_s: Optional[float] = None
    end_s: Optional[float] = None
    char_start: Optional[int] = None
    char_end: Optional[int] = None
    page: Optional[int] = None
    sample_rate: Optional[int] = None
    parent_lineage_id: Optional[str] = None
    parent_source: Optional[str] = None
    parent_entity_key: Optional[str] = None

    @property
    def is_raw(self) -> bool:
        return self.role == RAW

    def where(self) -> str:
        """Human-readable position inside the raw file."""
        parts = []
        if _set(self.page):
            parts.append(f"page {self.page}")
        if _set(self.char_start):
            parts.append(f"chars [{self.char_start}, {self.char_end})")
        elif _set(self.start_s):
            if self.modality == "video":
                parts.append(f"frame pts {self.start_s:.3f}s")
            else:
                parts.append(f"window [{self.start_s:.3f}, {self.end_s:.3f}) s")
                if self.sample_rate:
                    parts.append(f"@{self.sample_rate} Hz")
        return ", ".join(parts) or "whole file"


@dataclass(frozen=True)
class EncoderInfo:
    """The transformation that produced a vector: model identity, preprocessing and code."""

    model_id: str
    model_revision: Optional[str]
    model_version: str
    preprocess_hash: str
    code_version: str


@dataclass
class LineageRecord:
    """One embedding row (segment, pooled item or fused) and everything it was derived from."""

    lineage_id: str
    project: str
    source: str
    view: str
    entity_key: str
    kind: str
    item_id: str
    uri: str
    sha256: str
    modality: str
    position: str
    encoder: EncoderInfo
    run_id: str
    created_at: datetime
    event_timestamp: Optional[datetime] = None
    parents: list[ParentRef] = field(default_factory=list)
    deleted_at: Optional[datetime] = None
    erasure_id: Optional[str] = None

    @property
    def key(self) -> str:
        return record_key(self.project, self.source, self.entity_key, self.lineage_id)


@dataclass
class SafetyRecord:
    """The content filters' verdict on one file's content under one set of thresholds: the part
    of a raw source's lineage that says what was checked before any model saw it."""

    project: str
    sha256: str
    modality: str
    uri: str
    verdict: str  # allow, flag or block
    reasons: list[str]
    findings: list[dict[str, Any]]
    errors: list[str]
    thresholds_hash: str
    checked_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "findings": list(self.findings),
                "errors": list(self.errors), "thresholds_hash": self.thresholds_hash,
                "checked_at": self.checked_at.isoformat()}


@dataclass
class LineageNode:
    """A record with its parents resolved into records, down to raw file positions, and the
    content filters' verdict on each raw file (by content hash; filled in at the root)."""

    record: LineageRecord
    children: list[tuple[ParentRef, Optional["LineageNode"]]] = field(default_factory=list)
    safety: dict[str, SafetyRecord] = field(default_factory=dict)

    def raw_parents(self) -> list[ParentRef]:
        """Every raw file position this vector depends on, through any depth of derivation."""
        out: list[ParentRef] = []
        for ref, node in self.children:
            if ref.is_raw:
                out.append(ref)
            elif node is not None:
                out.extend(node.raw_parents())
        return out

    def to_dict(self, safety: Optional[dict[str, SafetyRecord]] = None) -> dict[str, Any]:
        r = self.record
        safety = self.safety if safety is None else safety
        return {
            "lineage_id": r.lineage_id,
            "view": r.view,
            "source": r.source,
            "entity_key": r.entity_key,
            "kind": r.kind,
            "model_id": r.encoder.model_id,
            "model_revision": r.encoder.model_revision,
            "model_version": r.encoder.model_version,
            "preprocess_hash": r.encoder.preprocess_hash,
            "code_version": r.encoder.code_version,
            "run_id": r.run_id,
            "created_at": r.created_at.isoformat() if r.created_at else None,
            "deleted_at": r.deleted_at.isoformat() if r.deleted_at else None,
            "parents": [
                {
                    "role": ref.role,
                    "uri": ref.uri,
                    "sha256": ref.sha256,
                    "modality": ref.modality,
                    "position": ref.position,
                    "where": ref.where(),
                    **({"safety": safety[ref.sha256].to_dict()} if ref.is_raw and ref.sha256 in safety else {}),
                    **({"lineage": node.to_dict(safety)} if node is not None else {}),
                    **({"lineage_id": ref.parent_lineage_id} if ref.parent_lineage_id else {}),
                }
                for ref, node in self.children
            ],
        }


@dataclass
class ErasureRecord:
    """Audit record of an ``impacted --delete``: what was removed, when and why (no content)."""

    erasure_id: str
    project: str
    target: str
    sha256s: list[str]
    reason: str
    at: datetime
    records: int
    offline_rows: int
    online_rows: int
    views: list[str]


# --- ingest runs ------------------------------------------------------------------------------


@dataclass
class QuarantineRecord:
    run_id: str
    source: str
    item_id: str
    uri: str
    sha256: str
    modality: str
    stage: str
    reason: str
    at: datetime
    # Filled by the quality gates (mm_feast.quality): what failed, what was seen, where.
    expectations: str = ""  # comma-separated expectation names
    observed: str = ""  # JSON object: expectation name -> observed value
    locator: str = ""  # uri#position of the failing segment(s), or the uri
    model_version: str = ""


@dataclass
class RunSummary:
    """What one ingest run did; the counts always add up."""

    source: str
    run_id: str
    model_version: str = ""
    seen: int = 0
    ingested: int = 0
    unchanged: int = 0
    quarantined: int = 0
    segments: int = 0
    removed: int = 0  # items no longer in the collection: their rows left the stores
    changed: int = 0  # items whose content changed: their old segments were replaced
    flagged: int = 0  # ingested items a content filter flagged (stored with safety = "flag")
    encoder_calls: int = 0
    resumed: int = 0  # items a killed earlier run had finished, taken from its spool (in ingested/quarantined)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # per stage, summed over workers
    driver_loaded_model: bool = False  # the run's own process holds the model's weights (False on Ray: the actors do)
    seconds: float = 0.0
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)  # per gate: rows, blocked/warned expectations
    warnings: list[str] = field(default_factory=list)  # "uri: what is odd about it", for the summary

    @property
    def balanced(self) -> bool:
        return self.seen == self.ingested + self.unchanged + self.quarantined

    def line(self) -> str:
        return (
            f"[{self.source}] seen={self.seen} ingested={self.ingested} unchanged={self.unchanged}"
            f" quarantined={self.quarantined} removed={self.removed} segments={self.segments} in {self.seconds:.1f}s"
        )
