"""Helpers that declare embedding feature views with one standard, lineage-carrying schema."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Optional

from feast import Entity, FeatureView, Field, ValueType
from feast.types import Array, Float32, Float64, Int64, String

from mm_feast.core.schema import ITEM_COLUMNS, LOCATOR_COLUMNS, MODEL_COLUMNS, POSITION_COLUMNS, SEGMENT_COLUMNS, VECTOR_FIELD
from mm_feast.media import SegmentationConfig
from mm_feast.plugin.milvus.full_text import FULL_TEXT_TAG
from mm_feast.sources import EmbeddingSource, MediaSource

segment = Entity(
    name="segment",
    join_keys=["segment_id"],
    value_type=ValueType.STRING,
    description="One frame, audio window, text block or image: '<item_id>#<position>'",
)
item = Entity(
    name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="One raw media item"
)

_FEAST_TYPES = {"string": String, "float64": Float64, "int64": Int64, "string_list": Array(String)}


def schema_fields(columns: dict[str, str]) -> list[Field]:
    """Feast fields for columns of the one row schema (``mm_feast.core.schema``)."""
    return [Field(name=name, dtype=_FEAST_TYPES[kind]) for name, kind in columns.items()]


LOCATOR_FIELDS = schema_fields(LOCATOR_COLUMNS)
# Where in its item a segment lies (-1 where it does not apply), and its text / item caption.
SEGMENT_POSITION_FIELDS = schema_fields(POSITION_COLUMNS)
MODEL_FIELDS = schema_fields(MODEL_COLUMNS)


@lru_cache(maxsize=None)
def model_dim(model_id: str) -> int:
    """Output size of a model, read from its config alone (cheap enough for `feast apply`)."""
    from transformers import AutoConfig

    from mm_feast.encoders.base import load_pretrained

    config = load_pretrained(AutoConfig, model_id)
    return int(getattr(config, "projection_dim", None) or config.hidden_size)


def vector_field(dim: int, metric: str) -> Field:
    return Field(
        name=VECTOR_FIELD,
        dtype=Array(Float32),
        vector_index=True,
        vector_length=dim,
        vector_search_metric=metric,
    )


def _online_view(
    name: str, entity: Entity, schema: list[Field], source: EmbeddingSource, ttl: Optional[timedelta], tags: Optional[dict[str, str]]
) -> FeatureView:
    """An online embedding view over ``source``; its tags carry the source's lineage tags."""
    return FeatureView(
        name=name,
        entities=[entity],
        schema=schema,
        source=source,
        ttl=ttl or timedelta(0),
        online=True,
        description=source.description,
        tags={**source.tags, **(tags or {})},
    )


def segment_embedding_view(
    name: str,
    media: MediaSource,
    modality: str,
    model_id: str,
    segmentation: Optional[SegmentationConfig] = None,
    ttl: Optional[timedelta] = None,
    metric: str = "COSINE",
    tags: Optional[dict[str, str]] = None,
    full_text: Optional[bool] = None,
    batch_size: Optional[int] = None,
    track: Optional[str] = None,
) -> FeatureView:
    """One row per segment (frame / window / block / image), with its exact locator.

    ``full_text`` gives the ``text`` column a BM25 keyword index in Milvus (keyword and hybrid
    search); by default text views have one and other views do not. ``batch_size`` is this
    view's model batch (None: the engine's ``batch_size``). ``track="audio"`` on a video view
    embeds the videos' soundtracks in audio windows (rows say modality "audio", uri the video).
    """
    source = EmbeddingSource(
        name=f"{name}_source", media=media, modality=modality, model_id=model_id, segmentation=segmentation,
        batch_size=batch_size, track=track,
    )
    return _segment_view(name, source, model_id, ttl, metric, tags, modality == "text" if full_text is None else full_text)


def generated_text_view(
    name: str,
    media: MediaSource,
    modality: str,
    generator: str,
    model_id: str,
    segmentation: Optional[SegmentationConfig] = None,
    generator_settings: Optional[dict] = None,
    track: Optional[str] = None,
    ttl: Optional[timedelta] = None,
    metric: str = "COSINE",
    tags: Optional[dict[str, str]] = None,
    full_text: bool = True,
    batch_size: Optional[int] = None,
) -> FeatureView:
    """Text that ``generator`` writes for each segment, as a feature: a caption per image or frame
    (an image-to-text model), the text in it ("tesseract"), the words in an audio window or a
    soundtrack ("pocketsphinx", ``track="audio"`` on video). The text is in the ``text`` column,
    with a BM25 index, and ``model_id`` embeds it (a CLIP text tower puts captions in the images'
    space). Rows keep the segment's locator, so a caption of frame t traces back to t."""
    source = EmbeddingSource(
        name=f"{name}_source", media=media, modality=modality, model_id=model_id, segmentation=segmentation,
        batch_size=batch_size, generator=generator, generator_settings=generator_settings, track=track,
        description=f"text generated by {generator} for each {track or modality} segment of '{media.name}', embedded by {model_id}",
        tags={"mm_feast.generator": generator},
    )
    return _segment_view(name, source, model_id, ttl, metric, tags, full_text)


def _segment_view(name: str, source: EmbeddingSource, model_id: str, ttl: Optional[timedelta], metric: str,
                  tags: Optional[dict[str, str]], keyword: bool) -> FeatureView:
    schema = [*schema_fields(SEGMENT_COLUMNS), vector_field(model_dim(model_id), metric)]
    return _online_view(name, segment, schema, source, ttl, {FULL_TEXT_TAG: "text" if keyword else "", **(tags or {})})


def item_embedding_view(
    name: str,
    segments_view: FeatureView,
    ttl: Optional[timedelta] = None,
    metric: str = "COSINE",
    tags: Optional[dict[str, str]] = None,
) -> FeatureView:
    """One pooled row per item, computed from ``segments_view``'s stored vectors."""
    seg_source = segments_view.batch_source
    assert isinstance(seg_source, EmbeddingSource)
    source = EmbeddingSource(
        name=f"{name}_source",
        media=seg_source.media,
        modality=seg_source.modality,
        model_id=seg_source.model_id,
        granularity="item",
        segmentation=seg_source.segmentation,
        segments=seg_source,
    )
    schema = [*schema_fields(ITEM_COLUMNS), vector_field(model_dim(seg_source.model_id), metric)]
    return _online_view(name, item, schema, source, ttl, {"mm_feast.pooled_from": segments_view.name, **(tags or {})})


def media_items_view(name: str, media: MediaSource, ttl: Optional[timedelta] = None) -> FeatureView:
    """The scanned manifest itself as features (uri, sha256, modality, caption) per item."""
    return FeatureView(
        name=name,
        entities=[item],
        schema=[
            Field(name="item_id", dtype=String),
            *LOCATOR_FIELDS,
            Field(name="size_bytes", dtype=Int64),
            Field(name="caption", dtype=String),
            Field(name="error", dtype=String),
        ],
        source=media,
        ttl=ttl or timedelta(0),
        online=False,
        description=f"Manifest of media collection '{media.name}'",
        tags={"mm_feast.kind": "media_items", "mm_feast.media_source": media.name},
    )
