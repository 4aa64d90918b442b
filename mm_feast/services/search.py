"""Cross-modal search: encode a query (text, image, audio or video) in each target view's model
space, run top-k in Milvus, and return ranked hits with their locators and Feast features.

A query is only ever compared with vectors of the same model version: each view is searched
with a filter on ``model_version``, so vectors from two model versions never mix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from feast import FeatureStore, FeatureView

from mm_feast.core.errors import InvalidArgument, NotFound, QueryFileError, RepoConfigError
from mm_feast.encoders import Encoder
from mm_feast.plugin.compat import online_store_of
from mm_feast.media import AudioWindowing, FrameSampling, MediaError, SegmentationConfig, iter_segments
from mm_feast.services.query import Query
from mm_feast.sources import EmbeddingSource
from mm_feast.services.versions import query_encoder
from mm_feast.plugin.views import VECTOR_FIELD

logger = logging.getLogger(__name__)

__all__ = ["CrossModalSearch", "Hit", "Query", "encode_query"]

HIT_FIELDS = (
    "item_id", "uri", "sha256", "modality", "position", "start_s", "end_s", "char_start",
    "char_end", "text", "caption", "safety", "model_id", "model_version", "lineage_id",
)


@dataclass
class Hit:
    """One search result. ``score`` compares across hits of the same ``space`` only."""

    view: str
    entity_key: str
    score: float  # cosine similarity within the view's model space; higher is better
    fields: dict[str, Any]
    space: str = ""
    features: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    def where(self) -> str:
        """Human-readable locator: frame time, audio window or character span."""
        f = self.fields
        if f.get("char_start", -1) >= 0:
            return f"chars {f['char_start']}-{f['char_end']}"
        if f.get("start_s", -1.0) >= 0:
            if f.get("modality") == "video":
                return f"frame @ {f['start_s']:.2f}s"
            return f"{f['start_s']:.2f}-{f['end_s']:.2f}s"
        return "whole item"


#: How a query file is cut when the caller names no view settings: 1 s frames and windows.
QUERY_SEGMENTATION = SegmentationConfig(FrameSampling("every_n_seconds", 1.0), AudioWindowing(1.0, 1.0))


def encode_query(encoder: Encoder, query: Query, config: Optional[SegmentationConfig] = None) -> np.ndarray:
    """One normalised vector for the query in ``encoder``'s space (files are pooled over segments,
    cut by ``config``, with audio at the model's rate).

    A query file that cannot be decoded raises ``QueryFileError`` naming it and the reason.
    """
    if query.kind == "text":
        return encoder.encode("text", [query.text()])[0]
    path = Path(query.value)
    config = (config or QUERY_SEGMENTATION).with_sample_rate(getattr(encoder, "sample_rate", None))
    try:
        segments = [s.data for s in iter_segments(path, query.kind, config)]
        rows = encoder.encode(query.kind, segments) if segments else []
    except MediaError as exc:
        raise QueryFileError(exc.path, exc.reason) from exc
    except ValueError as exc:  # a kind the registry does not know
        raise QueryFileError(str(path), f"cannot search with a {query.kind} query: {exc}") from exc
    except OSError as exc:
        raise QueryFileError(str(path), f"cannot read it: {exc.strerror or exc}") from exc
    if len(rows) == 0:
        raise QueryFileError(str(path), f"no {query.kind} segment to encode")
    pooled = rows.mean(axis=0)
    return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


class CrossModalSearch:
    """Searches the embedding views of one Feast repo; encoders and query vectors are cached."""

    def __init__(self, store: FeatureStore):
        self.store = store
        self._query_cache: dict[tuple[str, Query], np.ndarray] = {}
        self._views_cache: Optional[list[FeatureView]] = None
        self._thresholds: Optional[Any] = None

    def embedding_views(self, refresh: bool = False) -> list[FeatureView]:
        """The repo's embedding views, read from the registry once (``refresh`` re-reads)."""
        if self._views_cache is None or refresh:
            views = self.store.list_feature_views()
            self._views_cache = [v for v in views if isinstance(v.batch_source, EmbeddingSource)]
        return self._views_cache

    def _views(self, names: Optional[Sequence[str]]) -> list[FeatureView]:
        views = self.embedding_views()
        if not names:
            return views
        by_name = {v.name: v for v in views}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise NotFound(f"not embedding views in this repo: {missing}; known: {sorted(by_name)}")
        return [by_name[n] for n in names]

    def _online_store(self) -> Any:
        store = online_store_of(self.store)
        if not hasattr(store, "search_vectors"):
            raise RepoConfigError(
                f"online store {type(store).__name__} has no search_vectors: set online_store.type"
                " to mm_feast.online_store.MmMilvusOnlineStore in feature_store.yaml"
            )
        return store

    def query_vector(self, encoder: Encoder, query: Query) -> np.ndarray:
        key = (encoder.space, query)
        if key not in self._query_cache:
            self._query_cache[key] = encode_query(encoder, query)
        return self._query_cache[key]

    def search(
        self,
        query: Query | str,
        views: Optional[Sequence[str]] = None,
        top_k: int = 10,
        features: Optional[Sequence[str]] = None,
        modalities: Optional[Sequence[str]] = None,
        model_version: Optional[str] = None,
        exclude_flagged: bool = False,
        screen: bool = True,
    ) -> list[Hit]:
        """Top-k hits over the chosen views (or every embedding view whose model takes the query).

        Each view is searched in the model version it serves (mm_feast.versions); naming another
        ``model_version`` raises ``CrossVersionQueryError`` instead of comparing two spaces.
        ``exclude_flagged`` leaves out rows a content filter flagged (``safety == "flag"``).
        ``screen`` runs the content filters on the query first: a blocked query raises
        ``QueryBlocked`` before any model sees it.
        """
        if isinstance(query, str):
            query = Query.parse(query)
        if screen:
            self.screen(query)
        online_store = self._online_store()
        hits: list[Hit] = []
        searched = []
        for view in self._views(views):
            source = view.batch_source
            if modalities and source.modality not in modalities:
                continue
            encoder = query_encoder(self.store, view, model_version)
            if not encoder.supports(query.kind):
                if views:
                    raise InvalidArgument(f"view '{view.name}' ({encoder.model_id}) cannot take a {query.kind} query")
                continue
            vector = self.query_vector(encoder, query)
            join_key = view.entity_columns[0].name
            columns = {c.name for c in view.features}
            output = [f for f in HIT_FIELDS if f in columns]
            expr = f'model_version == "{encoder.version}"'  # a version hash: hex, never user text
            if exclude_flagged and "safety" in columns:
                expr += ' and safety != "flag"'
            results = online_store.search_vectors(
                config=self.store.config,
                table=view,
                vector_field=VECTOR_FIELD,
                query=vector,
                top_k=top_k,
                output_fields=output,
                expr=expr,
            )[0]
            searched.append(view.name)
            for row in results:
                fields = {k: row.get(k) for k in output}
                fields[join_key] = row[join_key]
                hits.append(Hit(view.name, str(row[join_key]), _score(row["distance"], view), fields, encoder.space))
        if not searched:
            if not self.embedding_views():
                raise InvalidArgument(
                    f"the repo {self.store.repo_path} has no embedding views: run `feast apply` in it first"
                )
            raise InvalidArgument(f"no embedding view in this repo takes a {query.kind} query")
        if len({h.space for h in hits}) > 1:
            logger.info(
                "hits span several model spaces (%s); their scores are not calibrated against"
                " each other: pass views= or modalities= to search one space",
                ", ".join(sorted({h.space for h in hits})),
            )
        hits.sort(key=lambda h: h.score, reverse=True)
        hits = hits[:top_k]
        if features:
            self._join_features(hits, list(features))
        return hits

    def screen(self, query: Query) -> None:
        """The content filters on a query, with the repo's thresholds (docs/governance.md)."""
        from mm_feast.core.errors import QueryBlocked
        from mm_feast.governance.scan import scan_file, scan_text
        from mm_feast.governance.thresholds import load_thresholds

        if self._thresholds is None:  # the repo's YAML, read once per search object, not per query
            self._thresholds = load_thresholds(Path(self.store.repo_path))
        thresholds = self._thresholds
        if query.is_file:
            verdict = scan_file(query.value, thresholds, query.kind)
        else:
            verdict = scan_text(query.value, thresholds)
        if verdict.verdict == "block":
            raise QueryBlocked(f"search query blocked by the content filters: {'; '.join(verdict.reasons)}")
        if verdict.verdict == "flag":
            logger.warning("search query flagged by the content filters: %s", "; ".join(verdict.reasons))

    def _join_features(self, hits: list[Hit], features: list[str]) -> None:
        """Attach requested Feast features to each hit via get_online_features."""
        if not hits:
            return
        join_keys = set()
        for ref in features:
            view = self.store.get_feature_view(ref.split(":")[0])
            join_keys.update(c.name for c in view.entity_columns)
        rows = [{k: (h.entity_key if k in h.fields and h.fields[k] == h.entity_key else h.fields.get(k)) for k in join_keys} for h in hits]
        response = self.store.get_online_features(features=features, entity_rows=rows).to_dict()
        for i, hit in enumerate(hits):
            hit.features = {ref: response[ref.split(":")[1]][i] for ref in features}


def _score(distance: float, view: FeatureView) -> float:
    """Milvus returns similarity for COSINE/IP and a distance for L2: map all to higher-is-better."""
    metric = next((f.vector_search_metric for f in view.features if f.name == VECTOR_FIELD), "COSINE")
    return -float(distance) if (metric or "").upper() == "L2" else float(distance)
