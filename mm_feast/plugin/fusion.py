"""Fused embeddings: one vector from several inputs, e.g. a report's text block and the image
in that report, with every input recorded as a parent in lineage.

Inputs are paired by a manifest column (``group_by``, e.g. ``report``): each row of the anchor
view is fused with the rows of the context views whose items share its group. All inputs must
come from one model space (same model id and version), so the fused vector lives in that space
and text or image queries search it directly. Fusion reads stored vectors; it never re-encodes.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Optional, Sequence

from feast import FeatureView

from mm_feast.core.schema import fused_columns
from mm_feast.sources import EmbeddingSource

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
    from mm_feast.plugin.views import model_dim, schema_fields, vector_field

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
    schema = [*schema_fields(fused_columns(join_key)), vector_field(model_dim(source.model_id), metric)]
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
    from mm_feast.plugin.views import item, segment

    known = {segment.name: segment, item.name: item}
    return [known[name] for name in view.entities]
