"""Builders of the rows that ingest writes, in the one row schema (``mm_feast.core.schema``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from mm_feast.core.ids import lineage_id, segment_id
from mm_feast.core.schema import ABSENT_FLOAT, ABSENT_INT, CREATED_FIELD, SEGMENT_COLUMNS, TIMESTAMP_FIELD, VECTOR_FIELD
from mm_feast.media.base import Segment
from mm_feast.sources import ManifestRow


def segment_row(row: ManifestRow, seg: Segment, vector: np.ndarray, encoder: Any, run_id: str, now: datetime) -> dict[str, Any]:
    loc = seg.locator
    position = loc.position()
    out = {
        "segment_id": segment_id(row.item_id, position),
        "item_id": row.item_id,
        "uri": row.uri,
        "sha256": row.sha256,
        "modality": row.modality,
        "position": position,
        "start_s": ABSENT_FLOAT if loc.start_s is None else float(loc.start_s),
        "end_s": ABSENT_FLOAT if loc.end_s is None else float(loc.end_s),
        "char_start": ABSENT_INT if loc.char_start is None else int(loc.char_start),
        "char_end": ABSENT_INT if loc.char_end is None else int(loc.char_end),
        "text": seg.data if isinstance(seg.data, str) else "",
        "caption": str(row.attributes.get("caption", "") or ""),
        "model_id": encoder.model_id,
        "model_version": encoder.version,
        "lineage_id": lineage_id(row.sha256, position, encoder.version, row.item_id),
    }
    assert out.keys() == SEGMENT_COLUMNS.keys()
    out.update({
        "run_id": run_id,
        VECTOR_FIELD: vector.astype(np.float32).tolist(),
        TIMESTAMP_FIELD: row.event_timestamp,
        CREATED_FIELD: now,
    })
    return out
