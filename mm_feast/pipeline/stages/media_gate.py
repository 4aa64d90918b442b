"""Quality gate on probed media metadata, before any decoding (Great Expectations, one call)."""

from __future__ import annotations

from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work


class MediaGate(Stage):
    name = "media_gate"
    scope = "batch"

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        by_row = {id(w.row): w for w in works}
        probe = lambda row, modality: run.context.probe(row.uri, row.sha256, modality)  # noqa: E731
        check = run.gate.check_media([w.row for w in works], probe)
        for key, lines in check.warnings.items():  # kept with the item: its spool entry repeats them on a resume
            by_row[key].warnings.extend(lines)
        quarantined = [Quarantined(by_row[id(row)], failure.stage, failure.reason, failure.details()) for row, failure in check.blocked]
        run.advance(len(quarantined))
        return StageOutput([by_row[id(r)] for r in check.passed], quarantined)
