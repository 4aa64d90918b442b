"""The media gate's row for one item: its ids, the types its name and its bytes claim, and the
facts the modality registry probes from its headers (no pixel or sample decoding).

The media gate validates one table of these rows per ingest batch, so a decompression bomb or a
96-channel WAV is refused from its header before any decoder allocates memory for it. Decoding
itself stays the segmenters' job: a file whose header is fine but whose data is broken (a
truncated JPEG) is quarantined at the decode stage with the segmenter's reason.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from mm_feast.media import EXTENSIONS, MediaFacts
from mm_feast.media.base import declared_format
from mm_feast.media.registry import Probed

logger = logging.getLogger(__name__)


@dataclass
class MediaInfo:
    """What the media gate sees of one item (a file that could not be probed fails ``decodable``
    alone, as its facts stay NaN/None and GE's column expectations skip those)."""

    row_id: str
    item_id: str
    uri: str
    modality: str
    size_bytes: int
    probe_error: str = ""
    declared_type: Optional[str] = None
    actual_type: Optional[str] = None
    facts: MediaFacts = field(default_factory=MediaFacts)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        return {**row, **row.pop("facts")}


def media_info(row_id: str, item_id: str, uri: str, modality: str, probed: Probed, size_bytes: int = 0) -> MediaInfo:
    """The gate's row from a probe's outcome; the declared and actual types compare name and bytes."""
    path = Path(uri)
    info = MediaInfo(row_id=row_id, item_id=item_id, uri=uri, modality=modality, size_bytes=int(size_bytes),
                     probe_error=probed.error, facts=probed.facts)
    if path.is_file():
        info.size_bytes = path.stat().st_size
    if probed.error:
        logger.debug("%s: probe failed: %s", uri, probed.error)
        return info
    declared = declared_format(path)
    info.actual_type = f"{probed.actual_modality}/{probed.facts.format or '?'}"
    if modality == "text":  # text has no magic bytes: only a non-text file contradicts its name
        info.declared_type = f"text/{'text' if probed.actual_modality == 'text' else declared or '?'}"
    else:
        info.declared_type = f"{EXTENSIONS.get(path.suffix.lower().lstrip('.'), modality)}/{declared or '?'}"
    return info
