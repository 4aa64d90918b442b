"""Fused embeddings: one vector from several inputs, e.g. a report's text block and the image
in that report, with every input recorded as a parent in lineage.

Inputs are paired by a manifest column (``group_by``, e.g. ``report``): each row of the anchor
view is fused with the rows of the context views whose items share its group. All inputs must
come from one model space (same model id and version), so the fused vector lives in that space
and text or image queries search it directly. Fusion reads stored vectors; it never re-encodes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from feast import FeatureView, Field
from feast.types import Array, Int64, String

from mm_feast.sources import CREATED_FIELD, TIMESTAMP_FIELD, EmbeddingSource

logger = logging.getLogger(__name__)

FUSED = "fused"


class FusedEmbeddingSource(EmbeddingSource):
    """Rows fused from an anchor source and context sources; a Feast data source like the others.

    It subclasses ``EmbeddingSource`` so the offline store ingests it before Feast reads it and
    search encodes queries with the shared model; its extra options travel in the same JSON spec.
    """

    def __init__(
        self,
        *,
        name: str,
        anchor: EmbeddingSource,
        context: Sequence[EmbeddingSource],
        group_by: str,
        anchor_weight: float = 0.5,
        path: Optional[str] = None,
        description: str = "",
        tags: Optional[dict[str, str]] = None,
        owner: str = "",
    ):
        if not context:
            raise ValueError(f"FusedEmbeddingSource '{name}': needs at least one context source")
        spaces = {(s.model_id, s.revision) for s in (anchor, *context)}
        if len(spaces) != 1:
            raise ValueError(
                f"FusedEmbeddingSource '{name}': inputs come from different models {sorted(map(str, spaces))};"
                " fuse only vectors of one space"
            )
        if not 0.0 < anchor_weight < 1.0:
            raise ValueError(f"FusedEmbeddingSource '{name}': anchor_weight must be in (0, 1)")
        self.anchor = anchor
        self.context = list(context)
        self.group_by = group_by
        self.anchor_weight = float(anchor_weight)
        parents = [anchor.name, *(c.name for c in self.context)]
        super().__init__(
            name=name,
            media=anchor.media,
            modality="+".join(dict.fromkeys([anchor.modality, *(c.modality for c in self.context)])),
            model_id=anchor.model_id,
            revision=anchor.revision,
            segmentation=anchor.segmentation,
            path=path,
            description=description or f"fused embeddings of {' + '.join(parents)} grouped by '{group_by}'",
            tags={
                "mm_feast.kind": "fused_embedding_source",
                "mm_feast.granularity": FUSED,
                "mm_feast.parents": ",".join(parents),
                "mm_feast.group_by": group_by,
                **(tags or {}),
            },
            owner=owner,
        )
        self.granularity = FUSED  # after the parent's check, which knows segment/item only

    def _options(self) -> dict[str, Any]:
        return {
            **super()._options(),
            "anchor": self.anchor.to_spec(),
            "context": [c.to_spec() for c in self.context],
            "group_by": self.group_by,
            "anchor_weight": self.anchor_weight,
        }

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> "FusedEmbeddingSource":
        return FusedEmbeddingSource(
            name=spec["name"],
            anchor=EmbeddingSource.from_spec(spec["anchor"]),
            context=[EmbeddingSource.from_spec(c) for c in spec["context"]],
            group_by=spec["group_by"],
            anchor_weight=spec["anchor_weight"],
            path=spec["path"],
            description=spec["description"],
            tags=spec["tags"],
            owner=spec["owner"],
        )

    @staticmethod
    def from_proto(data_source: Any) -> "FusedEmbeddingSource":
        return FusedEmbeddingSource.from_spec(FusedEmbeddingSource._spec_from_proto(data_source))

    def config(self) -> dict[str, Any]:
        """What determines a fused vector besides its inputs (hashed into lineage)."""
        return {
            "fusion": "anchor_weight * anchor + (1 - anchor_weight) * mean(context), then L2-normalise",
            "anchor_weight": self.anchor_weight,
            "group_by": self.group_by,
            "anchor": self.anchor.name,
            "context": [c.name for c in self.context],
        }


def fused_embedding_view(
    name: str,
    anchor: FeatureView,
    context: Sequence[FeatureView],
    group_by: str,
    anchor_weight: float = 0.5,
    ttl: Optional[timedelta] = None,
    metric: str = "COSINE",
    tags: Optional[dict[str, str]] = None,
) -> FeatureView:
    """A stored, searchable view of fused rows keyed like the anchor view, one row per anchor row."""
    from mm_feast.views import SEGMENT_POSITION_FIELDS, _LOCATOR_FIELDS, _MODEL_FIELDS, _vector_field, model_dim

    sources = [anchor.batch_source, *(c.batch_source for c in context)]
    if not all(isinstance(s, EmbeddingSource) for s in sources):
        raise TypeError(f"fused view '{name}': every input must be an mm-feast embedding view")
    source = FusedEmbeddingSource(
        name=f"{name}_source",
        anchor=anchor.batch_source,  # type: ignore[arg-type]
        context=sources[1:],  # type: ignore[arg-type]
        group_by=group_by,
        anchor_weight=anchor_weight,
    )
    join_key = anchor.entity_columns[0].name
    schema = [
        Field(name=join_key, dtype=String),
        *([Field(name="item_id", dtype=String)] if join_key != "item_id" else []),
        *_LOCATOR_FIELDS,
        *SEGMENT_POSITION_FIELDS,
        Field(name="group", dtype=String),
        Field(name="parent_lineage_ids", dtype=Array(String)),
        Field(name="n_parents", dtype=Int64),
        *_MODEL_FIELDS,
        _vector_field(model_dim(source.model_id), metric),
    ]
    parents = [anchor.name, *(c.name for c in context)]
    return FeatureView(
        name=name,
        entities=_entities_of(anchor),
        schema=schema,
        source=source,
        ttl=ttl or timedelta(0),
        online=True,
        description=source.description,
        tags={
            **source.tags,
            "mm_feast.kind": "fused_embedding_view",
            "mm_feast.parent_views": ",".join(parents),
            "mm_feast.lineage": f"{source.media.name} -> {' + '.join(parents)} -> {name}",
            **(tags or {}),
        },
    )


def _entities_of(view: FeatureView) -> list[Any]:
    """The anchor's entity objects (views keep names; the helpers' entities are module objects)."""
    from mm_feast.views import item, segment

    known = {segment.name: segment, item.name: item}
    return [known[name] for name in view.entities]


# --- ingestion -------------------------------------------------------------------------------


def _current_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per item, only the rows of its newest (sha256, model_version): the file as it is now."""
    if frame.empty:
        return frame
    latest = frame.sort_values(CREATED_FIELD).groupby("item_id").tail(1)[["item_id", "sha256", "model_version"]]
    return frame.merge(latest, on=["item_id", "sha256", "model_version"], how="inner")


def _groups(source: FusedEmbeddingSource, repo_path: Optional[Path]) -> dict[str, str]:
    """item_id -> group value, from the manifest column ``group_by`` (empty values ignored)."""
    listed = source.media._listed_items(repo_path)  # the manifest's extra columns, without hashing files
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


def ensure_fused(source: FusedEmbeddingSource, context: Any) -> Any:
    """Bring the fused parquet up to date from the inputs' rows of this run: fuse new combinations,
    drop fused rows whose inputs are gone, record lineage."""
    from mm_feast.ingest import RunSummary, _read_parquet, _record_run, source_rows, store_rows
    from mm_feast.lineage.db import LineageDB
    from mm_feast.lineage.recorder import code_version, config_hash, embedding_parent, make_record
    from mm_feast.lineage.records import EncoderInfo

    started = time.perf_counter()
    repo_path, run_id = context.repo_path, context.run_id
    inputs = [source.anchor, *source.context]
    frames = [_current_rows(source_rows(p, context)) for p in inputs]
    groups = _groups(source, repo_path)
    anchor, contexts = frames[0], frames[1:]
    digest, config_text = config_hash(source.config())
    sink = source.resolved_path(repo_path)
    existing = _read_parquet(sink)
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
        context_mean = np.mean([np.asarray(m["embedding"], dtype=np.float32) for _, m in context_rows], axis=0)
        context_mean /= max(float(np.linalg.norm(context_mean)), 1e-12)
        vector = source.anchor_weight * np.asarray(row["embedding"], dtype=np.float32) + (1 - source.anchor_weight) * context_mean
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        fused = {
            **({"segment_id": row["segment_id"]} if "segment_id" in row else {}),
            "item_id": row["item_id"],
            "uri": row["uri"],
            "sha256": row["sha256"],
            "modality": source.modality,
            "position": row.get("position", "item"),
            "start_s": row.get("start_s", -1.0),
            "end_s": row.get("end_s", -1.0),
            "char_start": row.get("char_start", -1),
            "char_end": row.get("char_end", -1),
            "text": row.get("text", ""),
            "caption": "; ".join(dict.fromkeys(str(m.get("caption", "")) for _, m in context_rows if m.get("caption"))),
            "group": group,
            "parent_lineage_ids": [p[2] for p in parent_ids],
            "n_parents": len(parent_ids),
            "model_id": row["model_id"],
            "model_version": row["model_version"],
            "lineage_id": lid,
            "run_id": run_id,
            "embedding": vector.astype(np.float32).tolist(),
            TIMESTAMP_FIELD: max([row[TIMESTAMP_FIELD], *(m[TIMESTAMP_FIELD] for _, m in context_rows)]),
            CREATED_FIELD: now,
        }
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
    _record_run(repo_path, summary)
    logger.info("%s (%d anchor rows without a complete group)", summary.line(), unpaired)
    return summary
