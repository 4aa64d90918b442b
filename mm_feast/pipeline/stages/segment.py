"""Decode each item into its segments (frames, windows, blocks, the whole image); a file that
cannot be decoded is quarantined with the decoder's reason and the chunk goes on."""

from __future__ import annotations

from mm_feast.media.base import MediaError
from mm_feast.pipeline.segments import segments_for
from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work


class Segment(Stage):
    name = "segment"
    scope = "chunk"
    prefetch = True  # decoding the next chunk overlaps encoding this one
    runs_on = "cpu"  # a pure function of the files: a Ray CPU task

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        kept: list[Work] = []
        quarantined: list[Quarantined] = []
        for work in works:
            if work.row.error:
                quarantined.append(Quarantined(work, "read", work.row.error))
                continue
            try:
                work.segments = segments_for(work.row, run.source, run.encoder, run.context)
            except MediaError as exc:
                quarantined.append(Quarantined(work, "decode", exc.reason))
                continue
            except Exception as exc:  # a decoder crash on one file is still that file's problem
                quarantined.append(Quarantined(work, "decode", f"{type(exc).__name__}: {exc}"))
                continue
            kept.append(work)
        run.advance(len(quarantined))
        return StageOutput(kept, quarantined)
