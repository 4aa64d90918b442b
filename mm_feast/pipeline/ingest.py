"""Ingest of one embedding source: scan → (the stage list) → pool/fuse → write offline → lineage.

Run by the compute engine once per `feast materialize` (``mm_feast.plugin.engine``), or by
`mm-feast ingest`. Unchanged inputs (same sha256 and model version) are never re-encoded; rows of
files that changed or left the collection are dropped. Every run ends with a summary in which
``seen == ingested + unchanged + quarantined``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

import pandas as pd
from tqdm.auto import tqdm

from mm_feast.pipeline.lineage import erased_sha256s, record_ingest
from mm_feast.core.ids import lineage_id, segment_id  # noqa: F401  (re-exported: old import path)
from mm_feast.core.schema import ABSENT_FLOAT, ABSENT_INT  # noqa: F401  (re-exported: old import path)
from mm_feast.pipeline.context import RunContext
from mm_feast.pipeline.fuse import ensure_fused
from mm_feast.pipeline.rows import item_row
from mm_feast.pipeline.runner import LocalRunner
from mm_feast.pipeline.segments import segment_group, segmentation_for  # noqa: F401  (re-exported)
from mm_feast.pipeline.stage import SourceRun, Work
from mm_feast.pipeline.stage_list import segment_stages, split_at_checkpoint
from mm_feast.pipeline.checkpoint import Spool
from mm_feast.governance.thresholds import load_thresholds, thresholds_hash
from mm_feast.core.records import QuarantineRecord, RunSummary  # noqa: F401  (re-exported: old import path)
from mm_feast.stores.offline import read_empty_items, read_parquet, record_run, store_rows, write_empty_items  # noqa: F401
from mm_feast.quality.gate import IngestGate
from mm_feast.sources import UNKNOWN_MODALITY, EmbeddingSource, ManifestRow, MediaSource

logger = logging.getLogger(__name__)

ERASED_URI = "[erased]"  # what quarantine records say instead of an erased file's path



def _quarantine(summary: RunSummary, row: ManifestRow, stage: str, reason: str, **details: str) -> None:
    logger.warning("quarantined %s (%s): %s", row.uri, stage, reason)
    summary.quarantined += 1
    summary.quarantine.append(
        QuarantineRecord(
            run_id=summary.run_id,
            source=summary.source,
            item_id=row.item_id,
            uri=row.uri,
            sha256=row.sha256,
            modality=row.modality,
            stage=stage,
            reason=reason,
            at=datetime.now(timezone.utc),
            model_version=summary.model_version,
            **{"locator": row.uri, **details},
        )
    )


def _pool_items(segment_rows: pd.DataFrame, known: set[tuple[str, str, str]], run_id: str) -> list[dict[str, Any]]:
    """One item-level row per (item, content, model version) not already stored."""
    now = datetime.now(timezone.utc)
    return [
        item_row(group.to_dict("records"), run_id, now)
        for key, group in segment_rows.groupby(["item_id", "sha256", "model_version"], sort=False)
        if key not in known
    ]


def current_items(rows: Iterable[ManifestRow]) -> dict[str, str]:
    """item_id -> sha256 of what is on disk now (readable items only)."""
    return {r.item_id: r.sha256 for r in rows if not r.error and r.sha256}


def prune_stale(existing: pd.DataFrame, current: dict[str, str], keep_removed: bool) -> tuple[pd.DataFrame, set[str], set[str]]:
    """Drop rows of files that changed (their old segments) or left the collection.

    Returns (kept rows, changed item ids, removed item ids). A changed file's old rows go whatever
    the options; a removed file's rows stay only with ``keep_removed``.
    """
    if existing.empty:
        return existing, set(), set()
    ids, shas = existing["item_id"].astype(str), existing["sha256"].astype(str)
    listed = ids.isin(list(current))
    changed_rows = listed & (shas != ids.map(current))
    removed_rows = ~listed
    drop = changed_rows | (removed_rows if not keep_removed else False)
    changed = set(ids[changed_rows])
    removed = set(ids[removed_rows]) if not keep_removed else set()
    return existing[~drop].reset_index(drop=True), changed, removed


def ensure_embeddings(
    source: EmbeddingSource,
    repo_path: Optional[Path] = None,
    batch_size: int = 32,
    show_progress: bool = True,
    context: Optional[RunContext] = None,
) -> RunSummary:
    """Bring ``source``'s parquet up to date with its media collection and model, once per run."""
    context = context or RunContext(Path(repo_path) if repo_path is not None else None, batch_size=batch_size, show_progress=show_progress)
    return context.once(("ingest", source.name), lambda: _ingest(source, context))


def source_rows(source: EmbeddingSource, context: RunContext) -> pd.DataFrame:
    """The source's offline rows after this run's ingest (from memory when this run wrote them)."""
    ensure_embeddings(source, context.repo_path, context=context)
    return context.once(("rows", source.name), lambda: read_parquet(source.resolved_path(context.repo_path)))


def _ingest(source: EmbeddingSource, context: RunContext) -> RunSummary:
    started = time.perf_counter()
    repo_path = context.repo_path
    run_id = context.run_id
    if source.granularity == "fused":  # rows combine other views' rows: see mm_feast.fusion
        return ensure_fused(source, context, rows_of=source_rows)
    if source.granularity == "item":
        assert source.segments is not None
        inner = ensure_embeddings(source.segments, repo_path, context=context)
        seg_rows = source_rows(source.segments, context)
        sink = source.resolved_path(repo_path)
        existing = read_parquet(sink)
        current = {} if seg_rows.empty else dict(zip(seg_rows["item_id"].astype(str), seg_rows["sha256"].astype(str)))
        kept, _, removed = prune_stale(existing, current, keep_removed=False)
        known = set(zip(kept["item_id"], kept["sha256"], kept["model_version"])) if not kept.empty else set()
        pooled = _pool_items(seg_rows, known, run_id) if not seg_rows.empty else []
        frame = store_rows(sink, kept, pd.DataFrame(pooled), len(kept) != len(existing))
        context.put(("rows", source.name), frame)
        record_ingest(repo_path, source, pd.DataFrame(pooled), run_id)
        # counts are the segment run's (same items); quarantine records stay with that run
        summary = replace(inner, source=source.name, run_id=run_id, quarantine=[], segments=len(pooled), removed=len(removed))
        summary.seconds = time.perf_counter() - started
        record_run(repo_path, summary)
        logger.info(summary.line())
        return summary

    encoder = source.encoder()
    calls_before = encoder.calls
    summary = RunSummary(source=source.name, run_id=run_id, model_version=encoder.version)
    all_rows, scanned = scan_media(source.media, repo_path, context)
    rows = [r for r in all_rows if r.modality == source.modality]
    summary.seen = len(rows)
    summary.warnings = [w for w in scanned.warnings if w.split(":", 1)[0] in {r.uri for r in rows}]
    sink = source.resolved_path(repo_path)
    existing = read_parquet(sink)
    on_disk = current_items(rows)
    kept, changed, removed = prune_stale(existing, on_disk, keep_removed=source.media.keep_removed)
    summary.removed = len(removed)
    summary.changed = len(changed)
    done = set(zip(kept["item_id"], kept["sha256"], kept["model_version"])) if not kept.empty else set()
    stored_empty = read_empty_items(sink)
    empty = {e for e in stored_empty if on_disk.get(e[0]) == e[1]}  # changed or removed: forgotten
    done |= empty
    todo = []
    erased = erased_sha256s(repo_path)
    gate = IngestGate(source, repo_path, run_id, encoder.version, encoder.dim)
    for row in rows:
        if row.sha256 in erased:  # right-to-erasure: never re-ingest erased content, never name it
            _quarantine(summary, replace(row, uri=ERASED_URI), "erased", "content erased by `mm-feast impacted --delete` (see the lineage audit)")
        elif (row.item_id, row.sha256, encoder.version) in done:
            summary.unchanged += 1
        elif gate.held(row):  # quarantined earlier with this content: held until released
            summary.quarantined += 1
        else:
            todo.append(row)
    # what a killed earlier run of this source finished is taken from its spool, not redone
    spool = Spool(sink, encoder.version, _spool_settings(source, encoder, gate, context))
    resumed, resumed_refused, todo = spool.resume(todo)
    # the stage list: media gate -> content filter -> segment -> encode (spooled per chunk) ->
    # embedding gate, which sees the resumed and the new items together (mm_feast.pipeline.stage_list)
    finished = len(resumed) + len(resumed_refused)
    progress = tqdm(total=len(todo) + finished, initial=finished, desc=f"embed {source.name}", unit="item",
                    disable=not context.show_progress)
    run = SourceRun(source, encoder, gate, context, datetime.now(timezone.utc), progress, on_chunk=spool.add)
    runner = context.runner or LocalRunner(chunk_items=context.batch_size)
    to_checkpoint, after_checkpoint = split_at_checkpoint(segment_stages(generated=bool(source.generator)))
    encoded, refused = runner.run(to_checkpoint, [Work(r) for r in todo], run)
    run.on_chunk = None
    order = {r.item_id: i for i, r in enumerate(rows)}  # the manifest's order, as in an unbroken run
    ready = sorted(resumed + encoded, key=lambda w: order.get(w.row.item_id, len(order)))
    done_works, refused_later = runner.run(after_checkpoint, ready, run)
    refused = resumed_refused + refused + refused_later
    progress.close()
    for q in refused:
        _quarantine(summary, q.work.row, q.stage, q.reason, **q.details)
    new_rows = [r for w in done_works for r in w.rows]
    flagged = [note for w in done_works for note in w.notes]
    summary.flagged = sum(1 for w in done_works if w.safety == "flag")
    summary.warnings += flagged
    summary.warnings += [line for w in done_works + [q.work for q in refused] for line in w.warnings]
    summary.ingested += len(done_works)
    summary.segments += len(new_rows)
    frame = store_rows(sink, kept, pd.DataFrame(new_rows), len(kept) != len(existing))
    empty |= {(w.row.item_id, w.row.sha256, encoder.version) for w in done_works if not w.rows}
    if empty != stored_empty:
        write_empty_items(sink, empty)
    context.put(("rows", source.name), frame)
    summary.validation = gate.finish()
    summary.warnings += gate.warning_lines()
    record_ingest(repo_path, source, pd.DataFrame(new_rows), run_id)
    summary.encoder_calls = encoder.calls - calls_before + run.remote_encoder_calls
    summary.resumed = finished
    summary.driver_loaded_model = encoder.weights_loaded
    summary.stage_seconds = {name: round(value, 3) for name, value in run.stage_seconds.items()}
    summary.seconds = time.perf_counter() - started
    record_run(repo_path, summary)
    spool.clear()  # its items are in the offline store now
    if not summary.balanced:  # a bug, never a data problem: fail loudly
        raise RuntimeError(f"ingest counts do not add up: {summary.line()}")
    logger.info(summary.line())
    return summary


def _spool_settings(source: EmbeddingSource, encoder: Any, gate: IngestGate, context: RunContext) -> str:
    """What spooled items depend on besides the model: segmentation, content-filter thresholds and
    the quality suites. Other settings after a kill mean other items: nothing is resumed."""
    # the content filter's own memo keys: the thresholds are read once per run for both
    thresholds = context.once(("safety_thresholds",), lambda: load_thresholds(context.repo_path))
    digest = context.once(("safety_thresholds_hash",), lambda: thresholds_hash(thresholds))
    _, _, segmentation = segment_group(source, encoder)  # the segmentation as canonical JSON
    return f"{segmentation}|{digest}|{gate.suite.version}"


def scan_media(media: MediaSource, repo_path: Optional[Path] = None, context: Optional[RunContext] = None) -> tuple[list[ManifestRow], RunSummary]:
    """Scan a collection and write its manifest, once per run; files no segmenter can take are
    quarantined here (stage "scan"), since no embedding view would ever see them."""
    context = context or RunContext(Path(repo_path) if repo_path is not None else None)
    return context.once(("scan", media.name), lambda: _scan(media, context))


def _scan(media: MediaSource, context: RunContext) -> tuple[list[ManifestRow], RunSummary]:
    started = time.perf_counter()
    summary = RunSummary(source=media.name, run_id=context.run_id)
    rows = media.scan(context.repo_path, write=False, read=context.read)
    erased = erased_sha256s(context.repo_path)
    # the manifest (and the media_items view over it) never lists erased content
    media.write_manifest([r for r in rows if r.sha256 not in erased], context.repo_path)
    summary.seen = len(rows)
    for row in rows:
        if row.modality == UNKNOWN_MODALITY:
            _quarantine(summary, row, "scan", row.error or "unsupported file type")
        else:
            summary.ingested += 1
    summary.warnings = list(media.last_warnings)
    summary.seconds = time.perf_counter() - started
    record_run(context.repo_path, summary)
    logger.info(summary.line())
    return rows, summary


def ensure_all(sources: Iterable[EmbeddingSource], repo_path: Optional[Path] = None, **kwargs: Any) -> list[RunSummary]:
    return [ensure_embeddings(s, repo_path, **kwargs) for s in sources]
