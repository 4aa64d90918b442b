"""Turn the rows an ingest run just appended into lineage records, and write them.

Called once per run by ``mm_feast.ingest`` (and by fusion), so lineage rows are written in the
same run as the embeddings they describe. Segment rows get one raw parent (file + locator);
pooled item rows get their segment rows as parents; fused rows get every input embedding.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import pandas as pd

import mm_feast
from mm_feast.stores.lineage import LineageDB
from mm_feast.core.ids import config_hash
from mm_feast.core.records import RAW, EncoderInfo, LineageRecord, ParentRef
from mm_feast.sources import CREATED_FIELD, TIMESTAMP_FIELD, EmbeddingSource, segmentation_to_dict

logger = logging.getLogger(__name__)

# The code that turns bytes into vectors: its hash is the transformation's code version.
_TRANSFORM_CODE = ("media", "encoders", "ingest.py", "fusion.py")


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<package version>+<hash of the segmenting, encoding and pooling code>``."""
    root = Path(mm_feast.__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _TRANSFORM_CODE:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return f"{mm_feast.__version__}+{digest.hexdigest()[:12]}"


def _processor_config(encoder: Any) -> dict[str, Any]:
    """The model-side preprocessing (resize, normalise, feature extraction, tokenizer limits)."""
    processor = getattr(encoder, "processor", None)
    if processor is not None and hasattr(processor, "to_dict"):
        return processor.to_dict()
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None:
        return {
            "class": type(tokenizer).__name__,
            "model_max_length": getattr(tokenizer, "model_max_length", None),
            "vocab_size": len(tokenizer),
            "do_lower_case": getattr(tokenizer, "do_lower_case", None),
        }
    return {}


def preprocess_config(source: EmbeddingSource, encoder: Any) -> dict[str, Any]:
    """Everything between raw bytes and the model input, for one source and encoder."""
    return {
        "modality": source.modality,
        "granularity": source.granularity,
        "segmentation": segmentation_to_dict(source.segmentation),
        "model_sample_rate": getattr(encoder, "sample_rate", None),
        "encoder_class": type(encoder).__name__,
        "processor": _processor_config(encoder),
        **({"track": source.track} if source.track else {}),
        # a generated-text view: the generator (id, engine version, settings, decoding) is part of
        # the transformation; a bound encoder: the frozen model whose space it was trained into
        **({"generator": encoder.generator.describe()} if getattr(encoder, "generator", None) else {}),
        **({"bound_to": encoder.parent_model} if getattr(encoder, "parent_model", None) else {}),
    }


def _num(value: Any, cast: type) -> Optional[Any]:
    """Locator columns hold -1 (or NaN) when absent; the records hold None."""
    if value is None or pd.isna(value) or value < 0:
        return None
    return cast(value)


def raw_parent(row: Any, ordinal: int = 0, sample_rate: Optional[int] = None) -> ParentRef:
    """The raw file position of one segment row."""
    return ParentRef(
        ordinal=ordinal,
        role=RAW,
        uri=str(row["uri"]),
        sha256=str(row["sha256"]),
        modality=str(row["modality"]),
        position=str(row["position"]),
        start_s=_num(row.get("start_s"), float),
        end_s=_num(row.get("end_s"), float),
        char_start=_num(row.get("char_start"), int),
        char_end=_num(row.get("char_end"), int),
        page=_num(row.get("page"), int),
        sample_rate=sample_rate if row["modality"] == "audio" else None,
    )


def embedding_parent(row: Any, role: str, ordinal: int, source: str, sample_rate: Optional[int] = None) -> ParentRef:
    """Another embedding row as a parent; its locator is copied so the tree reads without joins."""
    raw = raw_parent(row, ordinal, sample_rate)
    key = row["segment_id"] if "segment_id" in row and isinstance(row["segment_id"], str) else row["item_id"]
    return replace(raw, role=role, parent_lineage_id=str(row["lineage_id"]), parent_source=source, parent_entity_key=str(key))


def view_name(source: EmbeddingSource) -> str:
    """The feature view a source feeds (the views helpers name sources ``<view>_source``)."""
    return source.name.removesuffix("_source")


def make_record(db: LineageDB, source: EmbeddingSource, row: Any, kind: str, entity_key: str, encoder: EncoderInfo, run_id: str, parents: list[ParentRef]) -> LineageRecord:
    return LineageRecord(
        lineage_id=str(row["lineage_id"]),
        project=db.project,
        source=source.name,
        view=view_name(source),
        entity_key=entity_key,
        kind=kind,
        item_id=str(row["item_id"]),
        uri=str(row["uri"]),
        sha256=str(row["sha256"]),
        modality=str(row["modality"]),
        position=str(row.get("position", "item")),
        encoder=encoder,
        run_id=run_id,
        created_at=pd.Timestamp(row[CREATED_FIELD]).to_pydatetime(),
        event_timestamp=pd.Timestamp(row[TIMESTAMP_FIELD]).to_pydatetime(),
        parents=parents,
    )


def record_ingest(repo_path: Optional[Path], source: EmbeddingSource, rows: pd.DataFrame, run_id: str) -> int:
    """Write lineage for rows just appended to ``source``'s parquet (segment or pooled item rows)."""
    if rows is None or rows.empty:
        return 0

    started = time.perf_counter()
    db = LineageDB.for_repo(repo_path)
    encoder = source.encoder()
    sample_rate = getattr(encoder, "sample_rate", None)
    config = preprocess_config(source, encoder)
    records: list[LineageRecord] = []
    if source.granularity == "item":
        assert source.segments is not None
        segments = pd.read_parquet(source.segments.resolved_path(repo_path))
        config["pooling"] = "mean over segments, then L2-normalise"
        config["segments"] = config_hash(preprocess_config(source.segments, encoder))[0]
        digest, text = config_hash(config)
        groups = {key: group for key, group in segments.groupby(["item_id", "sha256", "model_version"], sort=False)}
        for row in rows.to_dict("records"):
            group = groups.get((row["item_id"], row["sha256"], row["model_version"]))
            parents = [] if group is None else [
                embedding_parent(seg, "segment", i, source.segments.name, sample_rate) for i, seg in enumerate(group.to_dict("records"))
            ]
            info = EncoderInfo(row["model_id"], source.revision, row["model_version"], digest, code_version())
            records.append(make_record(db, source, row, "item", str(row["item_id"]), info, run_id, parents))
    else:
        digest, text = config_hash(config)
        for row in rows.to_dict("records"):
            info = EncoderInfo(row["model_id"], source.revision, row["model_version"], digest, code_version())
            records.append(make_record(db, source, row, "segment", str(row["segment_id"]), info, run_id, [raw_parent(row, 0, sample_rate)]))
    written = db.write(records, {digest: text})
    logger.info("lineage: %d records for %s in %.3fs", written, source.name, time.perf_counter() - started)
    return written


def erased_sha256s(repo_path: Optional[Path]) -> set[str]:
    """Content hashes that an erasure removed; ingestion skips them so they stay erased."""
    return LineageDB.for_repo(repo_path).erased_sha256s()
