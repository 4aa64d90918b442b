"""Quality gate on vector statistics, before the write (Great Expectations, one call): an item
with any blocked segment row is withheld whole."""

from __future__ import annotations

from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work


class EmbeddingGate(Stage):
    name = "embedding_gate"
    scope = "batch"

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        rows = [r for w in works for r in w.rows]
        _, withheld = run.gate.check_embeddings(rows)
        kept = [w for w in works if w.row.item_id not in withheld]
        quarantined = [
            Quarantined(w, withheld[w.row.item_id].stage, withheld[w.row.item_id].reason, withheld[w.row.item_id].details())
            for w in works if w.row.item_id in withheld
        ]
        return StageOutput(kept, quarantined)
