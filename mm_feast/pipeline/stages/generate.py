"""Write a text per segment with the source's generator (a caption of a frame, the text in an
image, the words in an audio window); the segment then carries that text and is encoded as text.

A segment the generator has nothing to say about (no text in the picture, silence) yields no row.
A generator that fails on an item quarantines that item, and the chunk goes on."""

from __future__ import annotations

from dataclasses import replace

from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work


class Generate(Stage):
    name = "generate"
    scope = "chunk"
    runs_on = "model"  # a Ray actor holds the generator with the text encoder

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        generator = run.encoder.generator
        modality = run.source.segment_modality
        kept: list[Work] = []
        quarantined: list[Quarantined] = []
        for work in works:
            try:
                texts = generator.generate(modality, [s.data for s in work.segments])
            except Exception as exc:  # one item the generator cannot take is that item's problem
                quarantined.append(Quarantined(work, self.name, f"{generator.model_id} failed: {type(exc).__name__}: {exc}"))
                continue
            work.segments = [replace(s, data=text) for s, text in zip(work.segments, texts) if text.strip()]
            kept.append(work)
        run.advance(len(quarantined))
        return StageOutput(kept, quarantined)
