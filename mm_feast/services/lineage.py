"""Querying lineage: trees back to raw positions, everything derived from a file, erasure, and
re-verification of a stored vector from its locator.

``lineage`` answers "where did this vector come from?"; ``impacted`` answers "what did this
file feed?", and ``erase`` removes those rows from the offline parquet and from Milvus while
the lineage records stay behind, marked, next to an audit row.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

import numpy as np
import pandas as pd

from mm_feast import media
from mm_feast.pipeline.checkpoint import drop_spooled
from mm_feast.media import Locator, SegmentationConfig
from mm_feast.plugin.compat import online_store_of
from mm_feast.stores.lineage import LineageDB
from mm_feast.stores.quarantine import redact as redact_quarantine
from mm_feast.stores.quarantine import write_table
from mm_feast.core.records import RAW, ErasureRecord, LineageNode, LineageRecord, ParentRef, SafetyRecord

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_DEPTH = 8  # segment -> item -> fused -> ...: deep enough, and a guard against cycles


# --- lineage trees -------------------------------------------------------------------------


def build_tree(db: LineageDB, record: LineageRecord, depth: int = 0) -> LineageNode:
    """Resolve the record's embedding parents into their own records, recursively."""
    node = LineageNode(record)
    for ref in record.parents:
        child = None
        if not ref.is_raw and ref.parent_lineage_id and depth < _MAX_DEPTH:
            parent = db.record(ref.parent_source or "", ref.parent_entity_key or "", ref.parent_lineage_id)
            child = build_tree(db, parent, depth + 1) if parent is not None else None
        node.children.append((ref, child))
    return node


def find_records(db: LineageDB, key: str, view: Optional[str] = None) -> list[LineageRecord]:
    """Records for a lineage id (or a unique prefix of at least 8 characters), else an entity key."""
    records = db.by_lineage_ids([key])
    if not records and len(key) >= 8 and re.fullmatch(r"[0-9a-f]+", key):
        records = db.by_lineage_prefix(key)
    if not records:
        records = db.by_entity_key(key, view)
    if view:
        records = [r for r in records if r.view == view]
    return records


def with_safety(db: LineageDB, node: LineageNode) -> LineageNode:
    """Attach the content filters' verdict on each raw file of the tree (by content hash)."""
    node.safety = db.safety_for([ref.sha256 for ref in node.raw_parents()])
    return node


def lineage(repo_path: Path, key: str, view: Optional[str] = None) -> list[LineageNode]:
    """Every lineage tree for an entity key or lineage id, newest first, with safety verdicts."""
    db = LineageDB.for_repo(repo_path)
    return [with_safety(db, build_tree(db, r)) for r in find_records(db, key, view)]


def _encoder_line(record: LineageRecord) -> str:
    e = record.encoder
    revision = f" rev {e.model_revision}" if e.model_revision else ""
    return (
        f"model {e.model_id}{revision} version {e.model_version}, preprocess {e.preprocess_hash},"
        f" code {e.code_version}; run {record.run_id} at {record.created_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def _safety_line(record: Optional[SafetyRecord]) -> str:
    if record is None:
        return ""
    why = f": {'; '.join(record.reasons)}" if record.reasons else ""
    return f"  safety={record.verdict}{why}"


def format_tree(node: LineageNode, out: TextIO, indent: str = "", current: Optional[bool] = None,
                safety: Optional[dict[str, SafetyRecord]] = None) -> None:
    """Print a tree: the embedding, its encoder, then each parent down to raw file positions,
    each with the content filters' verdict on that file."""
    safety = node.safety if safety is None else safety
    r = node.record
    state = ""
    if r.deleted_at is not None and r.erasure_id:
        state = f"  [ERASED {r.deleted_at:%Y-%m-%d %H:%M:%S} by {r.erasure_id}]"
    elif r.deleted_at is not None:  # retired: its file changed or left the collection
        state = "  [superseded]"
    elif current is not None:
        state = "  [current]" if current else "  [superseded]"
    out.write(f"{indent}{r.kind} {r.entity_key}  view={r.view}  lineage_id={r.lineage_id}{state}\n")
    out.write(f"{indent}  {_encoder_line(r)}\n")
    for i, (ref, child) in enumerate(node.children):
        last = i == len(node.children) - 1
        branch, pad = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if ref.is_raw:
            out.write(f"{indent}  {branch}raw {ref.modality} {ref.uri}  sha256={ref.sha256[:16]}…  {ref.where()}"
                      f"{_safety_line(safety.get(ref.sha256))}\n")
        elif child is not None:
            out.write(f"{indent}  {branch}{ref.role}:\n")
            format_tree(child, out, indent + "  " + pad, safety=safety)
        else:
            out.write(
                f"{indent}  {branch}{ref.role} {ref.parent_source}/{ref.parent_entity_key} lineage_id={ref.parent_lineage_id}"
                f" (record not found)  {ref.uri} {ref.where()}\n"
            )


def print_lineage(nodes: Sequence[LineageNode], out: TextIO) -> None:
    """Trees grouped per view; the newest live record of a view/entity is marked current."""
    seen: set[tuple[str, str]] = set()
    for node in nodes:
        r = node.record
        key = (r.view, r.entity_key)
        current = r.deleted_at is None and key not in seen
        if r.deleted_at is None:
            seen.add(key)
        format_tree(node, out, current=current)
        out.write("\n")


# --- decoding a locator ----------------------------------------------------------------------


def decode_at(ref: ParentRef, preprocess: Optional[dict[str, Any]] = None) -> Any:
    """The model input at a raw locator, decoded from the file itself, independently of the
    segmenter (the modality registry's ``decode_at``): a video frame by its presentation time, an
    audio window by sample offsets, a text block by character offsets, or a whole image. Raises if
    the file's bytes changed."""
    locator = Locator(uri=ref.uri, sha256=ref.sha256, modality=ref.modality, start_s=ref.start_s,
                      end_s=ref.end_s, char_start=ref.char_start, char_end=ref.char_end)
    config = SegmentationConfig.from_dict((preprocess or {}).get("segmentation", {}))
    return media.decode_at(locator, config.with_sample_rate(ref.sample_rate or 16000))


@dataclass
class Verification:
    """Re-encoding a record's raw parents and comparing with the stored vector."""

    record: LineageRecord
    cosine: float
    detail: str = ""


def stored_vectors(path: Path, lineage_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Stored vectors by lineage id, from an embeddings parquet."""
    frame = pd.read_parquet(path, columns=["lineage_id", "embedding"])
    frame = frame[frame["lineage_id"].isin(set(lineage_ids))]
    return {lid: np.asarray(vec, dtype=np.float32) for lid, vec in zip(frame["lineage_id"], frame["embedding"])}


def verify_segments(db: LineageDB, records: Sequence[LineageRecord], parquet: Path, batch_size: int = 32) -> list[Verification]:
    """Decode every segment record at its locator, re-encode with its model, compare (cosine)."""
    from mm_feast.encoders import get_encoder

    vectors = stored_vectors(parquet, [r.lineage_id for r in records])
    out: list[Verification] = []
    by_model: dict[tuple[str, Optional[str], str], list[LineageRecord]] = {}
    for record in records:
        if record.kind != "segment":
            raise ValueError(f"{record.entity_key}: only segment records have one raw locator to re-encode")
        by_model.setdefault((record.encoder.model_id, record.encoder.model_revision, record.encoder.preprocess_hash), []).append(record)
    for (model_id, revision, preprocess_hash), group in by_model.items():
        encoder = get_encoder(model_id, revision)
        preprocess = db.preprocess_config(preprocess_hash)
        for record in group:
            if encoder.version != record.encoder.model_version:
                raise ValueError(
                    f"{record.entity_key}: stored by model version {record.encoder.model_version}, but {model_id} now loads"
                    f" version {encoder.version}; cannot re-encode in the original space"
                )
        inputs = [decode_at(r.parents[0], preprocess) for r in group]
        again = encoder.encode(group[0].modality, inputs, batch_size=batch_size)
        for record, vector in zip(group, again):
            stored = vectors.get(record.lineage_id)
            if stored is None:
                out.append(Verification(record, float("nan"), "no stored row with this lineage id"))
                continue
            cosine = float(np.dot(stored, vector) / max(np.linalg.norm(stored) * np.linalg.norm(vector), 1e-12))
            out.append(Verification(record, cosine))
    return out


# --- impact and erasure ----------------------------------------------------------------------


@dataclass
class Impact:
    """Everything derived (at any depth) from one raw file."""

    target: str
    sha256s: list[str]
    records: list[LineageRecord] = field(default_factory=list)

    def live(self) -> list[LineageRecord]:
        return [r for r in self.records if r.deleted_at is None]

    def views(self) -> list[str]:
        return sorted({r.view for r in self.records})


def _resolve_target(target: str, repo_path: Path) -> tuple[Optional[str], Optional[str]]:
    """(uri, sha256): a 64-hex string is a content hash; anything else a path (absolute or repo-relative)."""
    if _SHA256.match(target.lower()):
        return None, target.lower()
    path = Path(target).expanduser()
    if not path.is_absolute():
        candidates = [Path.cwd() / path, Path(repo_path) / path]
        path = next((c for c in candidates if c.exists()), candidates[0])
    return str(path.resolve()), None


def impacted(repo_path: Path, target: str) -> Impact:
    """Rows of every view derived from a file (uri: all its ingested versions) or a sha256."""
    db = LineageDB.for_repo(repo_path)
    uri, sha = _resolve_target(target, repo_path)
    direct = db.derived_from_file(uri=uri, sha256=sha)
    sha256s = sorted({p.sha256 for r in direct for p in r.parents if p.is_raw and (p.uri == uri if uri else p.sha256 == sha)})
    if sha and not sha256s:
        sha256s = [sha]
    # erasure is by content: every other file with the same bytes is derived from it too
    found: dict[str, LineageRecord] = {r.key: r for r in direct}
    for content in sha256s:
        found.update({r.key: r for r in db.derived_from_file(sha256=content)})
    direct = list(found.values())
    frontier = list(direct)
    while frontier:
        identities = {(r.lineage_id, r.source, r.entity_key) for r in frontier}
        children = db.children_of([r.lineage_id for r in frontier])
        frontier = []
        for child in children:
            if child.key in found:
                continue
            if any((p.parent_lineage_id, p.parent_source, p.parent_entity_key) in identities for p in child.parents):
                found[child.key] = child
                frontier.append(child)
    kind_order = {"segment": 0, "item": 1, "fused": 2}
    records = sorted(found.values(), key=lambda r: (kind_order.get(r.kind, 9), r.view, r.entity_key, r.created_at))
    return Impact(target=uri or sha or target, sha256s=sha256s, records=records)


def print_impact(impact: Impact, out: TextIO) -> None:
    out.write(f"Derived from {impact.target} (sha256 {', '.join(s[:16] + '…' for s in impact.sha256s) or 'unknown'}):\n")
    if not impact.records:
        out.write("  nothing: no lineage record names this file\n")
        return
    for r in impact.records:
        state = f"  ERASED by {r.erasure_id}" if r.deleted_at else ""
        out.write(f"  {r.view:<28} {r.kind:<8} {r.entity_key:<34} lineage_id={r.lineage_id}  model_version={r.encoder.model_version}{state}\n")
    live = impact.live()
    out.write(f"{len(impact.records)} rows in {len(impact.views())} views ({len(live)} live): {', '.join(impact.views())}\n")


def _views_by_source(store: Any) -> dict[str, Any]:
    return {v.batch_source.name: v for v in store.list_feature_views() if v.batch_source is not None}


def _entity_column(frame: pd.DataFrame) -> str:
    return "segment_id" if "segment_id" in frame.columns else "item_id"


def _delete_offline(view: Any, repo_path: Path, records: Sequence[LineageRecord]) -> int:
    """Rewrite the view's parquet without these rows (atomic replace); returns rows removed."""
    path = view.batch_source.resolved_path(repo_path)
    if not path.exists():
        return 0
    frame = pd.read_parquet(path)
    doomed = {(r.entity_key, r.lineage_id) for r in records}
    column = _entity_column(frame)
    mask = pd.Series([(k, lid) in doomed for k, lid in zip(frame[column], frame["lineage_id"])], index=frame.index)
    removed = int(mask.sum())
    if removed:
        tmp = path.with_suffix(".erase.tmp.parquet")
        frame[~mask].to_parquet(tmp, index=False)
        tmp.replace(path)
    return removed


def _delete_online(store: Any, view: Any, records: Sequence[LineageRecord]) -> int:
    """Delete the keys whose *current* online row is one of these records (a newer row is kept)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

    if not view.online or not records:
        return 0
    join_key = view.entity_columns[0].name
    keys = sorted({r.entity_key for r in records})
    doomed = {(r.entity_key, r.lineage_id) for r in records}
    online = store.get_online_features(features=[f"{view.name}:lineage_id"], entity_rows=[{join_key: k} for k in keys]).to_dict()
    matching = [k for k, lid in zip(online[join_key], online["lineage_id"]) if (k, lid) in doomed]
    if not matching:
        return 0
    online_store = online_store_of(store)
    if not hasattr(online_store, "delete_entity_keys"):
        raise TypeError(f"online store {type(online_store).__name__} cannot delete rows; use mm_feast.online_store.MmMilvusOnlineStore")
    protos = [EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=k)]) for k in matching]
    return int(online_store.delete_entity_keys(store.config, view, protos))


REDACTED = "[erased]"


def redact_metadata(repo_path: Path, sha256s: Sequence[str], uris: set[str]) -> int:
    """Remove the erased content from the manifests (so from every media-items view) and replace
    its paths, hashes and captions with ``[erased]`` in the quality results, Data Docs and
    quarantine records. Only the audit record keeps the hashes. Returns how many files changed."""
    data = Path(repo_path) / "data"
    hashes = set(sha256s)
    secrets = {u for u in uris if u} | hashes
    changed = 0
    for manifest in sorted((data / "manifests").glob("*.parquet")):
        frame = pd.read_parquet(manifest)
        doomed = frame["sha256"].isin(hashes) | frame["uri"].isin(uris)
        if doomed.any():
            secrets |= {str(c) for c in frame.loc[doomed, "caption"] if str(c).strip()} if "caption" in frame else set()
            write_table(manifest, frame[~doomed].reset_index(drop=True))
            changed += 1
    changed += 1 if redact_quarantine(repo_path, sorted(hashes), sorted(u for u in uris if u), REDACTED) else 0
    for table in sorted((data / "quarantine").rglob("*.parquet")):  # pushed rows' payloads
        frame = pd.read_parquet(table)
        hit = frame["sha256"].isin(hashes) | frame["uri"].isin(uris) if "sha256" in frame else pd.Series(False, index=frame.index)
        if hit.any():
            for column in ("uri", "locator"):
                if column in frame:
                    frame.loc[hit, column] = REDACTED
            write_table(table, frame)
            changed += 1
    secrets = {s for s in secrets if len(s) >= 4}
    for path in sorted((data / "quality").rglob("*")):
        if not path.is_file() or path.suffix not in {".json", ".html", ".jsonl", ".yml", ".yaml", ".txt"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        redacted = text
        for secret in sorted(secrets, key=len, reverse=True):
            redacted = redacted.replace(secret, REDACTED)
        if redacted != text:
            path.write_text(redacted, encoding="utf-8")
            changed += 1
    return changed


def erase_verdicts(repo_path: Path, impact: Impact) -> int:
    """For a target with nothing live to erase (a file the content filters blocked has no
    embedding): delete the content filters' verdicts on it, which quote its content."""
    uris = [] if _SHA256.match(impact.target) else [impact.target]
    # an interrupted run may have spooled it (a quarantine record names it) before it was erased
    drop_spooled(Path(repo_path) / "data" / "embeddings", impact.sha256s)
    return LineageDB.for_repo(repo_path).erase_safety(uris, impact.sha256s)


def erase(store: Any, impact: Impact, reason: str) -> ErasureRecord:
    """Remove every live derived row from the offline parquet and Milvus; keep an audit record.

    The lineage records stay (marked erased), the file's sha256 is tombstoned so the next
    ingest does not bring it back (nor any other file with the same bytes), its metadata is
    redacted everywhere else (``redact_metadata``), and the raw file itself is left to its owner.
    """
    repo_path = Path(store.repo_path)
    db = LineageDB.for_repo(repo_path)
    live = impact.live()
    views = _views_by_source(store)
    offline_rows = online_rows = 0
    by_source: dict[str, list[LineageRecord]] = {}
    for record in live:
        by_source.setdefault(record.source, []).append(record)
    for source, records in by_source.items():
        view = views.get(source)
        if view is None:
            from mm_feast.core.errors import InvalidArgument

            raise InvalidArgument(f"no feature view reads source '{source}' in this repo: cannot erase its rows")
        offline_rows += _delete_offline(view, repo_path, records)
        online_rows += _delete_online(store, view, records)
    # an interrupted run's spool may hold the content's vectors and text too
    folders = {v.batch_source.resolved_path(repo_path).parent for v in views.values() if hasattr(v.batch_source, "resolved_path")}
    spooled = sum(drop_spooled(folder, impact.sha256s) for folder in sorted(folders))
    if spooled:
        logger.info("erasure: dropped %d spool files of an interrupted run", spooled)
    erasure = ErasureRecord(
        erasure_id=f"erase-{uuid.uuid4().hex[:12]}",
        project=db.project,
        target=impact.target,
        sha256s=impact.sha256s,
        reason=reason,
        at=datetime.now(timezone.utc),
        records=len(live),
        offline_rows=offline_rows,
        online_rows=online_rows,
        views=sorted({r.view for r in live}),
    )
    db.mark_deleted([r.key for r in live], erasure)
    redacted = redact_metadata(repo_path, impact.sha256s, {impact.target} | {p.uri for r in impact.records for p in r.parents if p.is_raw})
    logger.info("erasure %s: redacted the files' metadata in %d files", erasure.erasure_id, redacted)
    raw = [p for r in live for p in r.parents if p.role == RAW and Path(p.uri).exists()]
    if raw:
        logger.warning("derived rows erased; the raw file %s itself still exists: remove it from the collection", raw[0].uri)
    logger.info("erasure %s: %d records, %d offline rows, %d online rows", erasure.erasure_id, len(live), offline_rows, online_rows)
    return erasure
