"""Encode a chunk's segments in batches; if a batch fails, retry item by item so that only the
item the model cannot take is quarantined. Turns vectors into the rows of the one row schema."""

from __future__ import annotations

import logging

import numpy as np

from mm_feast.pipeline.rows import segment_row
from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work

logger = logging.getLogger(__name__)


class Encode(Stage):
    name = "encode"
    scope = "chunk"
    runs_on = "model"  # a Ray actor that loaded the encoder once
    checkpoint = True  # the costly part is done: a killed run resumes after it

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        modality = run.source.encoded_modality
        batch_size = getattr(run.source, "batch_size", None) or run.context.batch_size  # per encoder, else the engine's
        segments = [s for w in works for s in w.segments]
        vectors = None
        if segments:
            try:
                vectors = run.encoder.encode(modality, [s.data for s in segments], batch_size=batch_size)
            except Exception as exc:  # one bad batch must not stop the run: retry item by item
                logger.warning("batch encode failed (%s); retrying item by item", exc)
        kept: list[Work] = []
        quarantined: list[Quarantined] = []
        offset = 0
        for work in works:
            if vectors is not None:
                item_vectors = vectors[offset : offset + len(work.segments)]
                offset += len(work.segments)
            else:
                try:
                    item_vectors = run.encoder.encode(modality, [s.data for s in work.segments], batch_size=batch_size)
                except Exception as exc:
                    quarantined.append(Quarantined(work, "encode", f"model failed: {exc}"))
                    continue
            work.rows = [
                segment_row(work.row, seg, np.asarray(v), run.encoder, run.context.run_id, run.now, work.safety, run.source.segment_modality)
                for seg, v in zip(work.segments, item_vectors)
            ]
            work.segments = []  # decoded data is not needed past this point
            kept.append(work)
        run.advance(len(works))  # an item counts as done once it is encoded or refused
        return StageOutput(kept, quarantined)
