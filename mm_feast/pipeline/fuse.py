"""Fusion at ingest: one vector from an anchor row and the context rows of its group (e.g. a
report's text block and the image in that report), from the inputs' rows of the same run, with
every input recorded as a parent in lineage. Fused rows whose inputs are gone are dropped."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from mm_feast.core.records import RunSummary
from mm_feast.core.schema import CREATED_FIELD, VECTOR_FIELD
from mm_feast.pipeline.rows import fused_row, normalised
from mm_feast.core.ids import config_hash
from mm_feast.pipeline.lineage import code_version, embedding_parent, make_record
from mm_feast.core.records import EncoderInfo
from mm_feast.stores.lineage import LineageDB
from mm_feast.stores.offline import read_parquet, record_run, store_rows

logger = logging.getLogger(__name__)

FUSED = "fused"



def _current_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per item, only the rows of its newest (sha256, model_version): the file as it is now."""
    if frame.empty:
        return frame
    latest = frame.sort_values(CREATED_FIELD).groupby("item_id").tail(1)[["item_id", "sha256", "model_version"]]
    return frame.merge(latest, on=["item_id", "sha256", "model_version"], how="inner")


def _groups(source: Any, repo_path: Optional[Path]) -> dict[str, str]:
    """item_id -> group value, from the manifest column ``group_by`` (empty values ignored)."""
    listed = source.media.listed_items(repo_path)  # the manifest's extra columns, without hashing files
    groups = {
        row.item_id: str(row.attributes.get(source.group_by) or "").strip()
        for row in listed
    }
    groups = {k: v for k, v in groups.items() if v and v.lower() != "nan"}
    if not groups:
        raise ValueError(
            f"fused source '{source.name}': no item of media source '{source.media.name}' has a"
            f" '{source.group_by}' value; add that column to its manifest"
        )
    return groups


def fused_lineage_id(config_hash: str, parents: Sequence[tuple[str, str, str]]) -> str:
    """Stable id of a fused row: same fusion config and same parent rows -> same id."""
    text = "|".join([FUSED, config_hash, *sorted("/".join(p) for p in parents)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _entity_key(row: dict[str, Any]) -> str:
    """A row's entity key: its segment id, or its item id for item-level rows."""
    return str(row["segment_id"]) if isinstance(row.get("segment_id"), str) else str(row["item_id"])


def ensure_fused(source: Any, context: Any, rows_of: Callable[[Any, Any], pd.DataFrame]) -> Any:
    """Bring the fused parquet up to date from the inputs' rows of this run: fuse new combinations,
    drop fused rows whose inputs are gone, record lineage."""
    started = time.perf_counter()
    repo_path, run_id = context.repo_path, context.run_id
    inputs = [source.anchor, *source.context]
    frames = [_current_rows(rows_of(p, context)) for p in inputs]
    groups = _groups(source, repo_path)
    anchor, contexts = frames[0], frames[1:]
    digest, config_text = config_hash(source.config())
    sink = source.resolved_path(repo_path)
    existing = read_parquet(sink)
    live_parents = set().union(*(set(f["lineage_id"]) for f in frames if not f.empty))
    if not existing.empty:  # a fused row lives only while every one of its inputs does
        alive = existing["parent_lineage_ids"].map(lambda ids: all(i in live_parents for i in ids))
        kept = existing[alive].reset_index(drop=True)
    else:
        kept = existing
    known = set(kept["lineage_id"]) if not kept.empty else set()
    summary = RunSummary(source=source.name, run_id=run_id)
    summary.removed = len(existing) - len(kept)
    by_group: list[dict[str, list[dict[str, Any]]]] = []
    for frame in contexts:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in frame.to_dict("records"):
            if row["item_id"] in groups:
                grouped.setdefault(groups[row["item_id"]], []).append(row)
        by_group.append(grouped)
    now = datetime.now(timezone.utc)
    db = LineageDB.for_repo(repo_path)
    new_rows: list[dict[str, Any]] = []
    records = []
    unpaired = 0
    for row in anchor.to_dict("records"):
        group = groups.get(row["item_id"])
        members = [grouped.get(group, []) for grouped in by_group] if group else []
        if not group or not all(members):
            unpaired += 1
            continue
        context_rows = [(inputs[i + 1], m) for i, rows in enumerate(members) for m in rows]
        if any(m["model_version"] != row["model_version"] for _, m in context_rows):
            logger.warning("%s: %s and its context are from different model versions; not fused", source.name, _entity_key(row))
            unpaired += 1
            continue
        summary.seen += 1
        parent_ids = [(source.anchor.name, _entity_key(row), str(row["lineage_id"]))] + [
            (src.name, _entity_key(m), str(m["lineage_id"])) for src, m in context_rows
        ]
        lid = fused_lineage_id(digest, parent_ids)
        if lid in known:
            summary.unchanged += 1
            continue
        context_mean = normalised(np.mean([np.asarray(m[VECTOR_FIELD], dtype=np.float32) for _, m in context_rows], axis=0))
        vector = normalised(source.anchor_weight * np.asarray(row[VECTOR_FIELD], dtype=np.float32) + (1 - source.anchor_weight) * context_mean)
        values = {
            "modality": source.modality,
            "position": row.get("position", "item"),
            "group": group,
            "parent_lineage_ids": [p[2] for p in parent_ids],
            "n_parents": len(parent_ids),
            "lineage_id": lid,
        }
        fused = fused_row("segment_id" if "segment_id" in row else "item_id", row, [m for _, m in context_rows], values, vector, run_id, now)
        new_rows.append(fused)
        known.add(lid)
        summary.ingested += 1
        summary.segments += 1
        parents = [embedding_parent(row, "anchor", 0, source.anchor.name)] + [
            embedding_parent(m, "context", i + 1, src.name) for i, (src, m) in enumerate(context_rows)
        ]
        info = EncoderInfo(row["model_id"], source.revision, row["model_version"], digest, code_version())
        records.append(make_record(db, source, fused, FUSED, _entity_key(row), info, run_id, parents))
    frame = store_rows(sink, kept, pd.DataFrame(new_rows), len(kept) != len(existing))
    context.put(("rows", source.name), frame)
    db.write(records, {digest: config_text})
    summary.model_version = str(anchor["model_version"].iloc[0]) if not anchor.empty else ""
    summary.seconds = time.perf_counter() - started
    record_run(repo_path, summary)
    logger.info("%s (%d anchor rows without a complete group)", summary.line(), unpaired)
    return summary
