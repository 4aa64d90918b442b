"""The media gate's input: one row of probed metadata per item, validated in one GE call per batch."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from mm_feast.quality.ge import unique_ids
from mm_feast.quality.probe import MediaInfo, probe
from mm_feast.sources import ManifestRow

logger = logging.getLogger(__name__)


def media_frame(rows: Sequence[ManifestRow], modality: str) -> pd.DataFrame:
    """Probe every row (headers and packets only) as ``modality``; row ids are the item ids."""
    ids = unique_ids([row.item_id for row in rows])
    infos: list[MediaInfo] = [probe(rid, row.item_id, row.uri, modality, row.size_bytes) for rid, row in zip(ids, rows)]
    return pd.DataFrame([info.as_row() for info in infos])
