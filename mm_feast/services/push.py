"""The embedding gate on Feast's write path, which bypasses ingest.

``store.write_to_online_store(view, df)`` (and ``store.push``) hand rows straight to the online
store. ``gated_write_to_online_store`` runs the view's embedding suite on the frame first (one GE
validation per vector field), quarantines failing rows with their payload so they can be released
later, writes the rest, and records the run like an ingest run: seen = written + quarantined.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from mm_feast.quality.embedding_gates import embedding_stats, load_reference
from mm_feast.quality.gate import GateFailure, decide, suite_for_view
from mm_feast.quality.ge import unique_ids, validate
from mm_feast.quality.reports import compact, run_report, write_report
from mm_feast.stores.quarantine import push_payload_path, quarantine_id, write_table

logger = logging.getLogger(__name__)

QID_COLUMN = "_quarantine_id"
STAGE = "push_gate"


@dataclass
class PushResult:
    """What one gated write did; ``seen == written + quarantined``."""

    view: str
    run_id: str
    seen: int
    written: int
    quarantined: int
    quarantine_ids: list[str] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)


def _row_hash(key: str, row: Mapping[str, Any], vector_columns: list[str]) -> str:
    """Content identity of a pushed row (entity key and vector bytes), stable through the parquet
    round trip of its stored payload: the same row pushed or released again is the same entry."""
    digest = hashlib.sha256(key.encode())
    for column in vector_columns:
        value = row.get(column)
        digest.update(np.asarray([] if value is None else value, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _text(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def gated_write_to_online_store(
    store: Any,
    feature_view_name: str,
    df: pd.DataFrame,
    *,
    repo_path: Optional[Path] = None,
    admit: Optional[Mapping[str, set[str]]] = None,
    allow_registry_cache: bool = True,
) -> PushResult:
    """Validate ``df``'s vectors against the view's embedding suite, quarantine blocked rows and
    write the others with ``store.write_to_online_store``.

    ``admit`` maps quarantine ids to expectation names to downgrade to warnings (what
    ``mm-feast quarantine release --admit`` passes for a pushed row).
    """
    from mm_feast.core.records import QuarantineRecord, RunSummary
    from mm_feast.stores.offline import record_run

    started = time.perf_counter()
    repo = Path(repo_path or store.repo_path)
    view = store.get_feature_view(feature_view_name, allow_registry_cache=allow_registry_cache)
    suite, reference_name = suite_for_view(view, repo)
    run_id = uuid.uuid4().hex[:12]
    frame = df.reset_index(drop=True)
    records = frame.to_dict("records")
    join_keys = [c.name for c in view.entity_columns]
    missing = [k for k in join_keys if k not in frame.columns]
    if missing:
        raise ValueError(f"rows for view {feature_view_name!r} lack its join keys {missing}")
    keys = ["|".join(str(r[k]) for k in join_keys) for r in records]
    vector_fields = [f for f in view.features if f.vector_index and f.name in frame.columns]
    hashes = [_row_hash(key, r, [f.name for f in vector_fields]) for key, r in zip(keys, records)]
    qids = [quarantine_id(feature_view_name, key, sha) for key, sha in zip(keys, hashes)]
    ids = unique_ids(keys)
    versions = [_text(r, "model_version") for r in records]
    locators = {
        rid: (f"{_text(r, 'uri')}#{_text(r, 'position')}" if _text(r, "uri") else f"{feature_view_name}:{key}")
        for rid, r, key in zip(ids, records, keys)
    }
    blocked: dict[str, GateFailure] = {}
    validations, overridden = [], []
    for vector_field in vector_fields:
        references = {v: ref for v in set(versions) if (ref := load_reference(repo, reference_name, v)) is not None}
        stats = embedding_stats(ids, list(frame[vector_field.name]), int(vector_field.vector_length or 0), versions, references)
        validation = validate(
            stats.frame, suite.embeddings, suite_name=f"{feature_view_name}.{vector_field.name}",
            stage="push" if len(vector_fields) == 1 else f"push.{vector_field.name}",
            run_name=run_id, repo_path=repo, variables={"expected_dim": int(vector_field.vector_length or 0)},
            unavailable=stats.unavailable, data_docs=bool(suite.options.get("data_docs", True)),
        )
        validations.append(validation)
        decisions = decide(validation, STAGE, {q: [rid] for q, rid in zip(qids, ids)}, locators, admit)
        overridden += decisions.overridden
        for qid, failure in decisions.blocked.items():
            blocked.setdefault(qid, failure)
    keep = [q not in blocked for q in qids]
    summary = RunSummary(source=feature_view_name, run_id=run_id, seen=len(records), ingested=int(sum(keep)))
    now = datetime.now(timezone.utc)
    for qid, key, sha, record in zip(qids, keys, hashes, records):
        if qid in blocked:
            failure = blocked[qid]
            logger.warning("push to %s: quarantined row %s: %s", feature_view_name, key, failure.reason)
            summary.quarantined += 1
            summary.quarantine.append(QuarantineRecord(
                run_id=run_id, source=feature_view_name, item_id=key, uri=_text(record, "uri"),
                sha256=sha, modality=_text(record, "modality"), stage=STAGE, reason=failure.reason,
                at=now, model_version=_text(record, "model_version"), **failure.details(),
            ))
    if blocked:
        path = push_payload_path(repo, feature_view_name)
        rows = frame[[not k for k in keep]].assign(**{QID_COLUMN: [q for q in qids if q in blocked]})
        previous = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
        write_table(path, pd.concat([previous, rows], ignore_index=True) if not previous.empty else rows)
    if any(keep):
        store.write_to_online_store(feature_view_name, frame[keep].reset_index(drop=True))
    report = run_report(feature_view_name, run_id, suite.version, suite.files, validations, overridden, repo)
    write_report(repo, report)
    summary.validation = compact(report)
    summary.seconds = time.perf_counter() - started
    record_run(repo, summary)
    if not summary.balanced:
        raise RuntimeError(f"push counts do not add up: {summary.line()}")
    logger.info("push to %s: seen=%d written=%d quarantined=%d", feature_view_name, summary.seen,
                summary.ingested, summary.quarantined)
    return PushResult(
        view=feature_view_name, run_id=run_id, seen=summary.seen, written=summary.ingested,
        quarantined=summary.quarantined, quarantine_ids=[q for q in qids if q in blocked],
        validation=summary.validation,
    )
