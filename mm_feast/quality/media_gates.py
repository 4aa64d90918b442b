"""The media gate's input: one row of probed metadata per item, validated in one GE call per batch."""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import pandas as pd

from mm_feast.media import probe_safely
from mm_feast.media.registry import Probed
from mm_feast.quality.ge import unique_ids
from mm_feast.quality.probe import media_info
from mm_feast.sources import ManifestRow

logger = logging.getLogger(__name__)

#: How the gate gets a probe: the run's memo (one probe per file and modality, from bytes read once)
ProbeFn = Callable[[ManifestRow, str], Probed]


def probe_path(row: ManifestRow, modality: str) -> Probed:
    return probe_safely(row.uri, modality)


def media_frame(rows: Sequence[ManifestRow], modality: str, probe: Optional[ProbeFn] = None) -> pd.DataFrame:
    """Probe every row (headers and packets only) as ``modality``; row ids are the item ids."""
    probe = probe or probe_path
    ids = unique_ids([row.item_id for row in rows])
    infos = [media_info(rid, row.item_id, row.uri, modality, probe(row, modality), row.size_bytes) for rid, row in zip(ids, rows)]
    return pd.DataFrame([info.as_row() for info in infos])
