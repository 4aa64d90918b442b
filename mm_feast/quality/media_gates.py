"""The media gate's input: one row of probed metadata per item, validated in one GE call per batch."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from mm_feast.quality.probe import MediaInfo, probe
from mm_feast.sources import ManifestRow

logger = logging.getLogger(__name__)


def media_frame(rows: Sequence[ManifestRow], modality: str) -> pd.DataFrame:
    """Probe every row (headers and packets only) as ``modality``; row ids are ``r<index>``."""
    infos: list[MediaInfo] = [
        probe(f"r{i}", row.item_id, row.uri, modality, row.size_bytes) for i, row in enumerate(rows)
    ]
    return pd.DataFrame([info.as_row() for info in infos])
