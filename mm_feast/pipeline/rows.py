"""Builders of the rows that ingest writes: segment, item (pooled) and fused rows, each with exactly
the columns of the one row schema (``mm_feast.core.schema``) plus the vector, times and run id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mm_feast.core.ids import lineage_id, segment_id
from mm_feast.core.schema import (
    CREATED_FIELD,
    ITEM_COLUMNS,
    RUN_FIELD,
    SEGMENT_COLUMNS,
    TIMESTAMP_FIELD,
    VECTOR_FIELD,
    conform,
    fused_columns,
)
from mm_feast.governance.verdict import LEVELS, worst
from mm_feast.media.base import Segment
from mm_feast.sources import ManifestRow


def embedding_row(columns: Mapping[str, str], values: Mapping[str, Any], vector: np.ndarray,
                  event_time: datetime, run_id: str, now: datetime) -> dict[str, Any]:
    """One stored row: the schema's columns, then the vector, the event and created times and the run."""
    return {
        **conform(columns, values),
        RUN_FIELD: run_id,
        VECTOR_FIELD: np.asarray(vector, dtype=np.float32).tolist(),
        TIMESTAMP_FIELD: event_time,
        CREATED_FIELD: now,
    }


def normalised(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def worst_safety(values: Sequence[Any]) -> str:
    """The most severe content-filter verdict among rows ("" when none was checked: anything that
    is not a verdict, such as a missing value in an older parquet, counts as unchecked)."""
    checked = [v for v in values if isinstance(v, str) and v in LEVELS]
    return worst(checked) if checked else ""


def segment_row(row: ManifestRow, seg: Segment, vector: np.ndarray, encoder: Any, run_id: str, now: datetime,
                safety: str = "", modality: Optional[str] = None) -> dict[str, Any]:
    """``modality`` is the segment's own (a soundtrack window of a video is audio), else the item's."""
    loc = seg.locator
    position = loc.position()
    values = {
        "segment_id": segment_id(row.item_id, position),
        "item_id": row.item_id,
        "uri": row.uri,
        "sha256": row.sha256,
        "modality": modality or row.modality,
        "position": position,
        "start_s": loc.start_s,
        "end_s": loc.end_s,
        "char_start": loc.char_start,
        "char_end": loc.char_end,
        "text": seg.data if isinstance(seg.data, str) else "",
        "caption": str(row.attributes.get("caption", "") or ""),
        "safety": safety,
        "model_id": encoder.model_id,
        "model_version": encoder.version,
        "lineage_id": lineage_id(row.sha256, position, encoder.version, row.item_id),
    }
    return embedding_row(SEGMENT_COLUMNS, values, vector, row.event_timestamp, run_id, now)


def item_row(segments: Sequence[Mapping[str, Any]], run_id: str, now: datetime) -> dict[str, Any]:
    """One item's row from its segment rows: their vectors mean-pooled and re-normalised."""
    first = segments[0]
    version = first["model_version"]
    values = {name: first[name] for name in ITEM_COLUMNS if name in first}
    values.update(n_segments=len(segments), safety=worst_safety([s.get("safety") for s in segments]), lineage_id=lineage_id(first["sha256"], "item", version, str(first["item_id"])))
    pooled = normalised(np.stack([np.asarray(s[VECTOR_FIELD], dtype=np.float32) for s in segments]).mean(axis=0))
    return embedding_row(ITEM_COLUMNS, values, pooled, first[TIMESTAMP_FIELD], run_id, now)


def fused_row(join_key: str, anchor: Mapping[str, Any], context: Sequence[Mapping[str, Any]], values: Mapping[str, Any],
              vector: np.ndarray, run_id: str, now: datetime) -> dict[str, Any]:
    """A fused row: the anchor's locator and model, the context's captions, valid from the newest input."""
    columns = fused_columns(join_key)
    inherited = {name: anchor[name] for name in columns if name in anchor}
    captions = "; ".join(dict.fromkeys(str(m.get("caption", "")) for m in context if m.get("caption")))
    event_time = max([anchor[TIMESTAMP_FIELD], *(m[TIMESTAMP_FIELD] for m in context)])
    safety = worst_safety([anchor.get("safety"), *(m.get("safety") for m in context)])
    return embedding_row(columns, {**inherited, "caption": captions, "safety": safety, **values}, vector, event_time, run_id, now)
