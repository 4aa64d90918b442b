"""Feast data sources for media collections and for the embeddings derived from them.

Both subclass Feast's ``FileSource`` so Feast's file offline store can read what they point at
(a parquet file); the media-specific options travel through the registry as JSON in the
proto's ``custom_options`` with ``type: CUSTOM_SOURCE``, so ``feast apply`` stores them and any
registry reader gets the same object back.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
from feast.data_format import ParquetFormat
from feast.infra.offline_stores.file_source import FileSource
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto

from mm_feast.core.errors import MediaSourceNotFound, UserError
from mm_feast.media import SegmentationConfig, detect_modality
from mm_feast.media.base import MediaError
from mm_feast.media.file import MediaFile

logger = logging.getLogger(__name__)

TIMESTAMP_FIELD = "event_timestamp"
CREATED_FIELD = "created_timestamp"
MANIFEST_BASE_COLUMNS = ("item_id", "uri", "sha256", "modality", "size_bytes")
UNKNOWN_MODALITY = "unknown"  # unsupported or unreadable files: quarantined at scan time


@dataclass
class ManifestRow:
    """One raw media item: its entity key, where it is, what it hashes to and when it is valid."""

    item_id: str
    uri: str
    modality: str
    event_timestamp: datetime
    sha256: str = ""
    size_bytes: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None  # set when the file could not even be read


def read_once(path: str | Path) -> MediaFile:
    """Read a file for its hash and type, keeping no bytes (a scan outside a run)."""
    return MediaFile.read(path, in_memory_limit=0)


def resolve_path(repo_path: Optional[Path], uri: str) -> Path:
    path = Path(uri).expanduser()
    if not path.is_absolute() and repo_path is not None:
        path = Path(repo_path) / path
    return path


def _utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


class _JsonOptionsSource(FileSource):
    """Shared proto plumbing: the whole source as a JSON spec in ``custom_options``."""

    def _options(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """Everything needed to rebuild this source; nested sources nest their specs."""
        return {
            "name": self.name,
            "path": self.path,
            "description": self.description,
            "tags": dict(self.tags),
            "owner": self.owner,
            **self._options(),
        }

    def _to_proto_impl(self) -> DataSourceProto:
        proto = super()._to_proto_impl()
        proto.type = DataSourceProto.CUSTOM_SOURCE
        proto.data_source_class_type = f"{type(self).__module__}.{type(self).__name__}"
        proto.custom_options.configuration = json.dumps(self.to_spec(), sort_keys=True).encode()
        return proto

    @classmethod
    def _spec_from_proto(cls, proto: DataSourceProto) -> dict[str, Any]:
        return json.loads(proto.custom_options.configuration.decode())

    def validate(self, config: Any) -> None:
        """Nothing to check at apply time: the parquet is written by ingestion, on first read."""

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and super().__eq__(other)
            and self._options() == other._options()  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return super().__hash__()


class MediaSource(_JsonOptionsSource):
    """A collection of images, videos, audio files and text documents.

    Declared by a directory (``root``; item ids are relative paths, timestamps file mtimes) or by
    a manifest table (``manifest``: csv/parquet with ``item_id``, ``uri``, ``event_timestamp``
    and any extra columns such as ``caption``). Scanning writes manifest rows with content
    sha256 to ``path`` (parquet), which Feast then reads like any file source.
    """

    def __init__(
        self,
        *,
        name: str,
        root: Optional[str] = None,
        manifest: Optional[str] = None,
        path: Optional[str] = None,
        modalities: tuple[str, ...] = ("image", "video", "audio", "text"),
        keep_removed: bool = False,
        description: str = "",
        tags: Optional[dict[str, str]] = None,
        owner: str = "",
    ):
        if not root and not manifest:
            raise ValueError(f"MediaSource '{name}' needs a root directory or a manifest")
        self.root = root
        self.manifest = manifest
        self.modalities = tuple(modalities)
        # False: a file that leaves the collection leaves the stores on the next materialize.
        self.keep_removed = bool(keep_removed)
        self.last_warnings: list[str] = []  # what the last scan found odd ("uri: why")
        super().__init__(
            name=name,
            path=path or f"data/manifests/{name}.parquet",
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            created_timestamp_column=CREATED_FIELD,
            description=description or "Multi-modal media collection (mm-feast)",
            tags={"mm_feast.kind": "media_source", **(tags or {})},
            owner=owner,
        )

    def _options(self) -> dict[str, Any]:
        return {"root": self.root, "manifest": self.manifest, "modalities": list(self.modalities), "keep_removed": self.keep_removed}

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> "MediaSource":
        spec = dict(spec)
        spec["modalities"] = tuple(spec["modalities"])
        return MediaSource(**spec)

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> "MediaSource":
        return MediaSource.from_spec(MediaSource._spec_from_proto(data_source))

    # ---- scanning ---------------------------------------------------------------------------
    def listed_items(self, repo_path: Optional[Path]) -> list[ManifestRow]:
        if self.manifest:
            return self._manifest_items(repo_path)
        root = resolve_path(repo_path, self.root or ".")
        if not root.is_dir():
            raise MediaSourceNotFound(f"MediaSource '{self.name}': root directory {root} not found")
        paths = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".") and p.suffix not in {".csv", ".parquet"}]
        stems = Counter(p.relative_to(root).with_suffix("").as_posix() for p in paths)
        rows = []
        for path in paths:
            relative = path.relative_to(root)
            stem = relative.with_suffix("").as_posix()
            # Two files with one stem (coffee.png, coffee.webp) are two items: both keep their suffix.
            item_id = stem if stems[stem] == 1 else relative.as_posix()
            if stems[stem] > 1:
                self.last_warnings.append(f"{path}: shares the name '{stem}' with another file; item id '{item_id}'")
            rows.append(
                ManifestRow(
                    item_id=item_id,
                    uri=str(path.resolve()),
                    modality="",
                    event_timestamp=datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc),
                )
            )
        return rows

    def _manifest_items(self, repo_path: Optional[Path]) -> list[ManifestRow]:
        manifest = resolve_path(repo_path, self.manifest or "")
        if not manifest.is_file():
            raise MediaSourceNotFound(f"MediaSource '{self.name}': manifest {manifest} not found")
        if manifest.suffix == ".parquet":
            records = pd.read_parquet(manifest).to_dict("records")
        else:
            with open(manifest, newline="", encoding="utf-8") as handle:
                records = list(csv.DictReader(handle))
        base = manifest.parent
        rows = []
        first_uri: dict[str, str] = {}
        for record in records:
            record = dict(record)
            uri = str(resolve_path(base, str(record.pop("uri"))).resolve())
            modality = str(record.pop("modality", "") or "")
            item_id = str(record.pop("item_id"))
            if item_id in first_uri:
                raise UserError(
                    f"{manifest}: item_id '{item_id}' is listed twice ({first_uri[item_id]} and {uri}); "
                    "item ids must be unique"
                )
            first_uri[item_id] = uri
            rows.append(
                ManifestRow(
                    item_id=item_id,
                    uri=uri,
                    modality=modality,
                    event_timestamp=_utc(record.pop(TIMESTAMP_FIELD)),
                    attributes={k: v for k, v in record.items() if k not in MANIFEST_BASE_COLUMNS},
                )
            )
        return rows

    def scan(self, repo_path: Optional[Path] = None, write: bool = True,
             read: Optional[Callable[[str], MediaFile]] = None) -> list[ManifestRow]:
        """List the collection's items with content sha256; unreadable files keep an error.

        ``read`` is how a file is read: a run passes its read cache, so the bytes hashed here also
        serve the probe and the decode; alone, each file is read once for its hash and type."""
        self.last_warnings = []
        read = read or read_once
        rows = []
        for row in self.listed_items(repo_path):
            try:
                file = read(row.uri)
                row.modality = row.modality or detect_modality(file)
                row.size_bytes, row.sha256 = file.size, file.sha256
            except MediaError as exc:
                row.modality, row.error = row.modality or UNKNOWN_MODALITY, exc.reason
            except OSError as exc:
                row.modality = row.modality or UNKNOWN_MODALITY
                row.error = f"cannot read file: {exc.strerror or exc}"
            if row.modality in self.modalities or row.modality == UNKNOWN_MODALITY:
                rows.append(row)
        if write:
            self.write_manifest(rows, repo_path)
        return rows

    def write_manifest(self, rows: list[ManifestRow], repo_path: Optional[Path]) -> Path:
        target = resolve_path(repo_path, self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        frame = pd.DataFrame(
            [
                {
                    "item_id": r.item_id,
                    "uri": r.uri,
                    "sha256": r.sha256,
                    "modality": r.modality,
                    "size_bytes": int(r.size_bytes),
                    "error": r.error or "",
                    "caption": str(r.attributes.get("caption", "") or ""),
                    TIMESTAMP_FIELD: r.event_timestamp,
                    CREATED_FIELD: now,
                }
                for r in rows
            ]
        )
        frame.to_parquet(target, index=False)
        return target


def segmentation_to_dict(config: SegmentationConfig) -> dict[str, Any]:
    return config.to_dict()


segmentation_from_dict = SegmentationConfig.from_dict


class EmbeddingSource(_JsonOptionsSource):
    """Embeddings of one modality of a MediaSource, made by one model, stored as parquet.

    ``granularity="segment"``: one row per frame/window/block/image. ``granularity="item"``:
    one pooled row per item, computed from the rows of ``segments`` (never re-encoded).
    The parquet at ``path`` is the offline copy (point-in-time training data); Feast
    materializes from it into the online store.
    """

    def __init__(
        self,
        *,
        name: str,
        media: MediaSource,
        modality: str,
        model_id: str,
        revision: Optional[str] = None,
        granularity: str = "segment",
        segmentation: Optional[SegmentationConfig] = None,
        segments: Optional["EmbeddingSource"] = None,
        path: Optional[str] = None,
        description: str = "",
        tags: Optional[dict[str, str]] = None,
        owner: str = "",
        batch_size: Optional[int] = None,
        generator: Optional[str] = None,
        generator_settings: Optional[dict[str, Any]] = None,
        track: Optional[str] = None,
    ):
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"EmbeddingSource '{name}': batch_size must be >= 1, got {batch_size}")
        if granularity not in ("segment", "item"):
            raise ValueError(f"EmbeddingSource '{name}': granularity must be 'segment' or 'item'")
        if granularity == "item" and segments is None:
            raise ValueError(f"EmbeddingSource '{name}': an item-level source pools `segments`")
        self.media = media
        self.modality = modality
        self.model_id = model_id
        self.revision = revision
        self.granularity = granularity
        self.segmentation = segmentation or SegmentationConfig()
        self.segments = segments
        # the model's batch for this source (a big model on a small GPU, a tiny one on a big GPU);
        # None: the engine's batch_size. Out-of-memory batches are halved either way.
        self.batch_size = int(batch_size) if batch_size is not None else None
        # a generated-text source: ``generator`` (a captioner, "tesseract", "pocketsphinx") writes a
        # text per segment, and ``model_id`` encodes that text (mm_feast.generators)
        self.generator = generator or None
        self.generator_settings = dict(generator_settings or {})
        # the stream of the item that is segmented, when not its own modality: "audio" is a
        # video's soundtrack
        if track not in (None, "", modality) and (modality, track) != ("video", "audio"):
            raise ValueError(f"EmbeddingSource '{name}': a {modality} item has no {track} track (only video has an audio track)")
        self.track = track if track and track != modality else None
        super().__init__(
            name=name,
            path=path or f"data/embeddings/{name}.parquet",
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            created_timestamp_column=CREATED_FIELD,
            description=description
            or f"{granularity}-level {modality} embeddings from '{media.name}' by {model_id}",
            tags={
                "mm_feast.kind": "embedding_source",
                "mm_feast.media_source": media.name,
                "mm_feast.modality": modality,
                "mm_feast.model": model_id,
                "mm_feast.granularity": granularity,
                **(tags or {}),
            },
            owner=owner,
        )

    def _options(self) -> dict[str, Any]:
        return {
            "media": self.media.to_spec(),
            "modality": self.modality,
            "model_id": self.model_id,
            "revision": self.revision,
            "granularity": self.granularity,
            "segmentation": segmentation_to_dict(self.segmentation),
            "segments": self.segments.to_spec() if self.segments else None,
            "batch_size": self.batch_size,
            "generator": self.generator,
            "generator_settings": self.generator_settings or None,
            "track": self.track,
        }

    @property
    def segment_modality(self) -> str:
        """What the segments are: the source's modality, or the track it reads (a soundtrack's audio)."""
        return self.track or self.modality

    @property
    def encoded_modality(self) -> str:
        """What the model encodes: the generated text, else the segments themselves."""
        return "text" if self.generator else self.segment_modality

    def encoder(self) -> Any:
        """The process-wide model of this source: its encoder, or its generator + text encoder."""
        if self.generator:
            from mm_feast.generators import get_generated_encoder

            return get_generated_encoder(self.generator, self.generator_settings, self.model_id, self.revision)
        from mm_feast.encoders import get_encoder

        return get_encoder(self.model_id, self.revision)

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> "EmbeddingSource":
        spec = dict(spec)
        spec["media"] = MediaSource.from_spec(spec["media"])
        spec["segmentation"] = segmentation_from_dict(spec["segmentation"])
        if spec.get("segments"):
            spec["segments"] = EmbeddingSource.from_spec(spec["segments"])
        return EmbeddingSource(**spec)

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> "EmbeddingSource":
        return EmbeddingSource.from_spec(EmbeddingSource._spec_from_proto(data_source))

    def resolved_path(self, repo_path: Optional[Path]) -> Path:
        return resolve_path(repo_path, self.path)
