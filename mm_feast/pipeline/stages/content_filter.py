"""Content filters on every input, before any model sees it (mm_feast.governance): a blocked item
is quarantined with the filters' reasons; a flagged one is ingested with ``safety = "flag"``,
which search can filter on, and listed in the run summary. Every verdict (allow, flag, block)
goes into the lineage database beside the file's content hash, so `mm-feast lineage` shows what
was checked before the model saw the file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

from mm_feast.core.records import SafetyRecord
from mm_feast.governance.scan import UNREADABLE, scan_file
from mm_feast.governance.thresholds import load_thresholds, thresholds_hash
from mm_feast.governance.verdict import Verdict
from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work
from mm_feast.stores.lineage import LineageDB


def safety_record(project: str, verdict: Verdict, sha256: str, modality: str, thresholds_digest: str) -> SafetyRecord:
    data = verdict.as_dict()
    return SafetyRecord(project, sha256, modality, verdict.uri, verdict.verdict, data["reasons"], data["findings"],
                        data["errors"], thresholds_digest, datetime.now(timezone.utc))


def admit(verdict: Verdict, waived: set[str]) -> Verdict:
    """The verdict with the blocks of the waived filters turned into flags (a person decided)."""
    findings = [replace(f, level="flag", reason=f"{f.reason} (admitted by quarantine release)")
                if f.level == "block" and f.filter in waived else f for f in verdict.findings]
    return Verdict(verdict.uri, findings, list(verdict.errors))


class ContentFilter(Stage):
    name = "content_filter"
    scope = "chunk"
    prefetch = True  # runs in the decode thread, one chunk ahead of the model

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        context = run.context
        thresholds = context.once(("safety_thresholds",), lambda: load_thresholds(context.repo_path))
        digest = context.once(("safety_thresholds_hash",), lambda: thresholds_hash(thresholds))
        db = LineageDB.for_repo(context.repo_path)
        kept: list[Work] = []
        quarantined: list[Quarantined] = []
        records: list[SafetyRecord] = []
        for work in works:
            row = work.row
            if row.error:  # unreadable: the segment stage quarantines it with the reader's reason
                kept.append(work)
                continue

            def check(row=row) -> Verdict:  # once per file and modality in a run, however many views read it
                verdict = scan_file(context.read(row.uri), thresholds, row.modality)
                records.append(safety_record(db.project, verdict, row.sha256, row.modality, digest))
                return verdict

            verdict = context.once(("safety", row.uri, row.sha256, row.modality), check)
            waived = run.gate.admitted(row)
            if waived and verdict.verdict == "block":  # released with --admit: served, but flagged
                verdict = admit(verdict, waived)
            if verdict.verdict == "block" and all(f.filter == UNREADABLE for f in verdict.findings if f.level == "block"):
                # it cannot be decoded (the filters read through the same decoders): a decode
                # failure, recorded as the segment stage would, and nothing reaches a model
                quarantined.append(Quarantined(work, "decode", verdict.errors[0] if verdict.errors else "cannot be decoded"))
                continue
            if verdict.verdict == "block":
                findings = [f for f in verdict.findings if f.level == "block"]
                details = {
                    "expectations": ",".join(dict.fromkeys(f.filter for f in findings)),
                    "observed": json.dumps({f.filter: f.score for f in findings}),
                    "locator": "; ".join(f"{row.uri}#{f.locator}" for f in findings),
                }
                quarantined.append(Quarantined(work, self.name, "blocked by content filter: " + "; ".join(verdict.reasons), details))
                continue
            work.safety = verdict.verdict
            if verdict.verdict == "flag":
                work.notes.append(f"{row.uri}: flagged by content filter: " + "; ".join(verdict.reasons))
            kept.append(work)
        db.write_safety(records)
        run.advance(len(quarantined))
        return StageOutput(kept, quarantined)
