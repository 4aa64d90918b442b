"""The order of the ingest stages for a segment-level embedding source.

Adding a stage is one module under ``mm_feast/pipeline/stages/`` and one line here: for example a
content filter goes between the media gate and segmentation (docs/architecture.md, "Adding a stage").
Pooling, fusion and the writes (offline parquet, online store, lineage) follow in
``mm_feast.ingest`` and the compute engine, from the kept rows.
"""

from __future__ import annotations

from mm_feast.pipeline.stage import Stage
from mm_feast.pipeline.stages.content_filter import ContentFilter
from mm_feast.pipeline.stages.embedding_gate import EmbeddingGate
from mm_feast.pipeline.stages.encode import Encode
from mm_feast.pipeline.stages.generate import Generate
from mm_feast.pipeline.stages.media_gate import MediaGate
from mm_feast.pipeline.stages.segment import Segment


def segment_stages(generated: bool = False) -> list[Stage]:
    """``generated``: a generated-text source, whose generator writes each segment's text before
    the text is encoded (mm_feast.pipeline.stages.generate)."""
    return [
        MediaGate(),
        ContentFilter(),
        Segment(),
        *([Generate()] if generated else []),
        Encode(),
        EmbeddingGate(),
    ]


def split_at_checkpoint(stages: list[Stage]) -> tuple[list[Stage], list[Stage]]:
    """The stages up to and including the checkpoint stage, and the ones after it (all of them
    first when none is marked)."""
    marks = [i for i, stage in enumerate(stages) if stage.checkpoint]
    cut = marks[-1] + 1 if marks else len(stages)
    return stages[:cut], stages[cut:]
