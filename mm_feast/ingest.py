"""The ingest pipeline: scan → segment → encode → append to the offline parquet, incrementally.

Called by the offline store before Feast reads an EmbeddingSource, so ``feast materialize`` and
``get_historical_features`` see up-to-date embeddings; unchanged inputs (same sha256 and same
model version) are never re-encoded. Every run ends with a summary in which
``seen == ingested + unchanged + quarantined``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mm_feast.encoders import Encoder, get_encoder
from mm_feast.lineage.recorder import erased_sha256s, record_ingest
from mm_feast.media import SegmentationConfig, segment_file
from mm_feast.media.base import MediaError, Segment
from mm_feast.pipeline.context import RunContext, shared
from mm_feast.quality.gate import IngestGate
from mm_feast.sources import (
    CREATED_FIELD,
    TIMESTAMP_FIELD,
    UNKNOWN_MODALITY,
    EmbeddingSource,
    ManifestRow,
    MediaSource,
    _resolve,
)

logger = logging.getLogger(__name__)

ABSENT_FLOAT = -1.0  # Milvus scalar fields are not nullable on 2.3: absent positions are -1
ABSENT_INT = -1


@dataclass
class QuarantineRecord:
    run_id: str
    source: str
    item_id: str
    uri: str
    sha256: str
    modality: str
    stage: str
    reason: str
    at: datetime
    # Filled by the quality gates (mm_feast.quality): what failed, what was seen, where.
    expectations: str = ""  # comma-separated expectation names
    observed: str = ""  # JSON object: expectation name -> observed value
    locator: str = ""  # uri#position of the failing segment(s), or the uri
    model_version: str = ""


@dataclass
class RunSummary:
    """What one ingest run did; the counts always add up."""

    source: str
    run_id: str
    model_version: str = ""
    seen: int = 0
    ingested: int = 0
    unchanged: int = 0
    quarantined: int = 0
    segments: int = 0
    removed: int = 0  # items no longer in the collection: their rows left the stores
    changed: int = 0  # items whose content changed: their old segments were replaced
    encoder_calls: int = 0
    seconds: float = 0.0
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)  # per gate: rows, blocked/warned expectations
    warnings: list[str] = field(default_factory=list)  # "uri: what is odd about it", for the summary

    @property
    def balanced(self) -> bool:
        return self.seen == self.ingested + self.unchanged + self.quarantined

    def line(self) -> str:
        return (
            f"[{self.source}] seen={self.seen} ingested={self.ingested} unchanged={self.unchanged}"
            f" quarantined={self.quarantined} removed={self.removed} segments={self.segments} in {self.seconds:.1f}s"
        )


def lineage_id(sha256: str, position: str, model_version: str) -> str:
    """Stable id of one embedding: same bytes, same position, same model → same id."""
    return hashlib.sha256(f"{sha256}|{position}|{model_version}".encode()).hexdigest()[:20]


def segment_id(item_id: str, position: str) -> str:
    return f"{item_id}#{position}"


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _append_parquet(path: Path, existing: pd.DataFrame, new_rows: pd.DataFrame) -> None:
    """Rewrite the file with the new rows; written to a temp file first so a crash leaves the old one."""
    if new_rows.empty:
        return
    frame = new_rows if existing.empty else pd.concat([existing, new_rows], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def _segment_row(row: ManifestRow, seg: Segment, vector: np.ndarray, encoder: Encoder, run_id: str, now: datetime) -> dict[str, Any]:
    loc = seg.locator
    position = loc.position()
    text = seg.data if isinstance(seg.data, str) else ""
    return {
        "segment_id": segment_id(row.item_id, position),
        "item_id": row.item_id,
        "uri": row.uri,
        "sha256": row.sha256,
        "modality": row.modality,
        "position": position,
        "start_s": ABSENT_FLOAT if loc.start_s is None else float(loc.start_s),
        "end_s": ABSENT_FLOAT if loc.end_s is None else float(loc.end_s),
        "char_start": ABSENT_INT if loc.char_start is None else int(loc.char_start),
        "char_end": ABSENT_INT if loc.char_end is None else int(loc.char_end),
        "text": text,
        "caption": str(row.attributes.get("caption", "") or ""),
        "model_id": encoder.model_id,
        "model_version": encoder.version,
        "lineage_id": lineage_id(row.sha256, position, encoder.version),
        "run_id": run_id,
        "embedding": vector.astype(np.float32).tolist(),
        TIMESTAMP_FIELD: row.event_timestamp,
        CREATED_FIELD: now,
    }


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


def segmentation_for(source: EmbeddingSource, encoder: Any) -> SegmentationConfig:
    """The source's segmentation, decoding audio at the model's rate whatever the file's rate is."""
    config = source.segmentation
    sample_rate = getattr(encoder, "sample_rate", None)
    if sample_rate and config.audio_windowing.sample_rate != sample_rate:
        config = replace(config, audio_windowing=replace(config.audio_windowing, sample_rate=sample_rate))
    return config


def segment_group(source: EmbeddingSource, encoder: Any) -> tuple[str, str, str]:
    """Views whose items decode to the same segments: (media source, modality, segmentation)."""
    return (source.media.name, source.modality, json.dumps(asdict(segmentation_for(source, encoder)), sort_keys=True))


def _segments_for(row: ManifestRow, source: EmbeddingSource, encoder: Encoder, context: Optional[RunContext] = None) -> list[Segment]:
    config = segmentation_for(source, encoder)
    group = segment_group(source, encoder)
    uses = context.get(("segment_consumers", group), 1) if context is not None else 1
    return shared(
        context,
        (group, row.uri, row.sha256),
        uses,
        lambda: segment_file(row.uri, modality=row.modality, config=config, sha256=row.sha256),
    )


def _encode_segments(encoder: Encoder, modality: str, segments: list[Segment], batch_size: int) -> np.ndarray:
    return encoder.encode(modality, [s.data for s in segments], batch_size=batch_size)


def _encode_items(
    source: EmbeddingSource,
    encoder: Encoder,
    todo: list[ManifestRow],
    summary: RunSummary,
    batch_size: int,
    show_progress: bool,
    context: Optional[RunContext] = None,
) -> list[dict[str, Any]]:
    """Segment and encode each item; a bad item is quarantined and the batch goes on."""
    now = datetime.now(timezone.utc)
    out: list[dict[str, Any]] = []
    pending: list[tuple[ManifestRow, list[Segment]]] = []

    def flush() -> None:
        segments = [s for _, segs in pending for s in segs]
        if not segments:
            progress.update(len(pending))
            pending.clear()
            return
        try:
            vectors = _encode_segments(encoder, source.modality, segments, batch_size)
        except Exception as exc:  # one bad batch must not stop the run: retry item by item
            logger.warning("batch encode failed (%s); retrying item by item", exc)
            vectors = None
        offset = 0
        for row, segs in pending:
            if vectors is not None:
                item_vectors = vectors[offset : offset + len(segs)]
                offset += len(segs)
            else:
                try:
                    item_vectors = _encode_segments(encoder, source.modality, segs, batch_size)
                except Exception as exc:
                    _quarantine(summary, row, "encode", f"model failed: {exc}")
                    continue
            out.extend(_segment_row(row, s, v, encoder, summary.run_id, now) for s, v in zip(segs, item_vectors))
            summary.ingested += 1
            summary.segments += len(segs)
        progress.update(len(pending))  # an item counts as done once it is encoded
        pending.clear()

    # the bar advances when items are encoded or quarantined, not merely decoded
    progress = tqdm(total=len(todo), desc=f"embed {source.name}", unit="item", disable=not show_progress)
    buffered = 0
    for row in todo:
        if row.error:
            _quarantine(summary, row, "read", row.error)
            progress.update(1)
            continue
        try:
            segments = _segments_for(row, source, encoder, context)
        except MediaError as exc:
            _quarantine(summary, row, "decode", exc.reason)
            progress.update(1)
            continue
        except Exception as exc:  # a decoder crash on one file is still that file's problem
            _quarantine(summary, row, "decode", f"{type(exc).__name__}: {exc}")
            progress.update(1)
            continue
        pending.append((row, segments))
        buffered += len(segments)
        if buffered >= batch_size:
            flush()
            buffered = 0
    flush()
    progress.close()
    return out


def _pool_items(segment_rows: pd.DataFrame, known: set[tuple[str, str, str]], run_id: str) -> list[dict[str, Any]]:
    """Mean-pool each item's segment vectors (then re-normalise) into one item-level row."""
    now = datetime.now(timezone.utc)
    out = []
    for (item_id, sha, version), group in segment_rows.groupby(["item_id", "sha256", "model_version"], sort=False):
        if (item_id, sha, version) in known:
            continue
        vectors = np.stack([np.asarray(v, dtype=np.float32) for v in group["embedding"]])
        pooled = vectors.mean(axis=0)
        pooled /= max(float(np.linalg.norm(pooled)), 1e-12)
        first = group.iloc[0]
        out.append(
            {
                "item_id": item_id,
                "uri": first["uri"],
                "sha256": sha,
                "modality": first["modality"],
                "caption": first["caption"],
                "n_segments": int(len(group)),
                "model_id": first["model_id"],
                "model_version": version,
                "lineage_id": lineage_id(sha, "item", version),
                "run_id": run_id,
                "embedding": pooled.astype(np.float32).tolist(),
                TIMESTAMP_FIELD: first[TIMESTAMP_FIELD],
                CREATED_FIELD: now,
            }
        )
    return out


def _record_run(repo_path: Optional[Path], summary: RunSummary) -> None:
    """Quarantine rows and the run summary go beside the data, so nothing is lost silently."""
    data_dir = _resolve(repo_path, "data")
    if summary.quarantine:
        qpath = data_dir / "quarantine" / f"{summary.source}.parquet"
        existing = _read_parquet(qpath)
        new = pd.DataFrame([asdict(q) for q in summary.quarantine])
        if not existing.empty:  # the same file failing the same way again is one record
            seen_before = set(zip(existing.uri, existing.sha256, existing.stage, existing.reason))
            keep = [(u, h, st, r) not in seen_before for u, h, st, r in zip(new.uri, new.sha256, new.stage, new.reason)]
            new = new[keep]
        _append_parquet(qpath, existing, new)
    runs = data_dir / "runs" / f"{summary.source}.jsonl"
    runs.parent.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in asdict(summary).items() if k != "quarantine"}
    record["at"] = datetime.now(timezone.utc).isoformat()
    with open(runs, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


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


def _rewrite_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Replace the file with ``frame`` (also when it became empty): temp file first, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def store_rows(path: Path, kept: pd.DataFrame, new_rows: pd.DataFrame, pruned: bool) -> pd.DataFrame:
    """Write the source's offline rows (kept + new) if anything changed; returns them."""
    frame = new_rows if kept.empty else kept if new_rows.empty else pd.concat([kept, new_rows], ignore_index=True)
    if pruned or not new_rows.empty or not path.exists():
        _rewrite_parquet(path, frame)
    return frame


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
    return context.once(("rows", source.name), lambda: _read_parquet(source.resolved_path(context.repo_path)))


def _ingest(source: EmbeddingSource, context: RunContext) -> RunSummary:
    started = time.perf_counter()
    repo_path = context.repo_path
    run_id = context.run_id
    if source.granularity == "fused":  # rows combine other views' rows: see mm_feast.fusion
        from mm_feast.fusion import ensure_fused

        return ensure_fused(source, context)
    if source.granularity == "item":
        assert source.segments is not None
        inner = ensure_embeddings(source.segments, repo_path, context=context)
        seg_rows = source_rows(source.segments, context)
        sink = source.resolved_path(repo_path)
        existing = _read_parquet(sink)
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
        _record_run(repo_path, summary)
        logger.info(summary.line())
        return summary

    encoder = get_encoder(source.model_id, source.revision)
    calls_before = encoder.calls
    summary = RunSummary(source=source.name, run_id=run_id, model_version=encoder.version)
    all_rows, scanned = scan_media(source.media, repo_path, context)
    rows = [r for r in all_rows if r.modality == source.modality]
    summary.seen = len(rows)
    summary.warnings = [w for w in scanned.warnings if w.split(":", 1)[0] in {r.uri for r in rows}]
    sink = source.resolved_path(repo_path)
    existing = _read_parquet(sink)
    kept, changed, removed = prune_stale(existing, current_items(rows), keep_removed=source.media.keep_removed)
    summary.removed = len(removed)
    summary.changed = len(changed)
    done = set(zip(kept["item_id"], kept["sha256"], kept["model_version"])) if not kept.empty else set()
    todo = []
    erased = erased_sha256s(repo_path)
    gate = IngestGate(source, repo_path, run_id, encoder.version, encoder.dim)
    for row in rows:
        if row.sha256 in erased:  # right-to-erasure: never re-ingest erased content
            _quarantine(summary, row, "erased", "content erased by `mm-feast impacted --delete` (see the lineage audit)")
        elif (row.item_id, row.sha256, encoder.version) in done:
            summary.unchanged += 1
        elif gate.held(row):  # quarantined earlier with this content: held until released
            summary.quarantined += 1
        else:
            todo.append(row)
    # quality gate on media: one validation of probed metadata, before any decoding
    todo, refused = gate.check_media(todo)
    for row, failure in refused:
        _quarantine(summary, row, failure.stage, failure.reason, **failure.details())
    new_rows = _encode_items(source, encoder, todo, summary, context.batch_size, context.show_progress, context)
    # quality gate on embeddings: one validation of per-row vector statistics, before the write
    new_rows, withheld = gate.check_embeddings(new_rows)
    for row in (r for r in todo if r.item_id in withheld):
        failure = withheld[row.item_id]
        summary.ingested -= 1  # counted by _encode_items; now quarantined instead
        summary.segments -= failure.rows
        _quarantine(summary, row, failure.stage, failure.reason, **failure.details())
    frame = store_rows(sink, kept, pd.DataFrame(new_rows), len(kept) != len(existing))
    context.put(("rows", source.name), frame)
    summary.validation = gate.finish()
    record_ingest(repo_path, source, pd.DataFrame(new_rows), run_id)
    summary.encoder_calls = encoder.calls - calls_before
    summary.seconds = time.perf_counter() - started
    _record_run(repo_path, summary)
    if not summary.balanced:  # a bug, never a data problem: fail loudly
        raise RuntimeError(f"ingest counts do not add up: {summary.line()}")
    logger.info(summary.line())
    return summary


def scan_media(media: MediaSource, repo_path: Optional[Path] = None, context: Optional[RunContext] = None) -> tuple[list[ManifestRow], RunSummary]:
    """Scan a collection and write its manifest, once per run; files no segmenter can take are
    quarantined here (stage "scan"), since no embedding view would ever see them."""
    context = context or RunContext(Path(repo_path) if repo_path is not None else None)
    return context.once(("scan", media.name), lambda: _scan(media, context))


def _scan(media: MediaSource, context: RunContext) -> tuple[list[ManifestRow], RunSummary]:
    started = time.perf_counter()
    summary = RunSummary(source=media.name, run_id=context.run_id)
    rows = media.scan(context.repo_path)
    summary.seen = len(rows)
    for row in rows:
        if row.modality == UNKNOWN_MODALITY:
            _quarantine(summary, row, "scan", row.error or "unsupported file type")
        else:
            summary.ingested += 1
    summary.warnings = list(media.last_warnings)
    summary.seconds = time.perf_counter() - started
    _record_run(context.repo_path, summary)
    logger.info(summary.line())
    return rows, summary


def ensure_all(sources: Iterable[EmbeddingSource], repo_path: Optional[Path] = None, **kwargs: Any) -> list[RunSummary]:
    return [ensure_embeddings(s, repo_path, **kwargs) for s in sources]
