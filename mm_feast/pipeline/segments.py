"""Which segments an item decodes to for a source, decoded once per run for every view that
shares them (two text views with one segmentation decode each file once)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Optional

from mm_feast.media import SegmentationConfig, segment_file
from mm_feast.media.base import Segment
from mm_feast.pipeline.context import RunContext, shared
from mm_feast.sources import EmbeddingSource, ManifestRow


def segmentation_for(source: EmbeddingSource, encoder: Any) -> SegmentationConfig:
    """The source's segmentation, decoding audio at the model's rate whatever the file's rate is."""
    return source.segmentation.with_sample_rate(getattr(encoder, "sample_rate", None))


def segment_group(source: EmbeddingSource, encoder: Any) -> tuple[str, str, str]:
    """Views whose items decode to the same segments: (media source, modality, segmentation)."""
    return (source.media.name, source.segment_modality, json.dumps(asdict(segmentation_for(source, encoder)), sort_keys=True))


def segments_for(row: ManifestRow, source: EmbeddingSource, encoder: Any, context: Optional[RunContext] = None) -> list[Segment]:
    config = segmentation_for(source, encoder)
    group = segment_group(source, encoder)
    uses = context.get(("segment_consumers", group), 1) if context is not None else 1
    return shared(
        context,
        (group, row.uri, row.sha256),
        uses,
        lambda: segment_file(context.read(row.uri) if context is not None else row.uri,
                             modality=source.segment_modality, config=config, sha256=row.sha256),
    )
