"""Cross-modal search: encode a query (text, image, audio or video) in each target view's model
space, search Milvus by vector, by BM25 keywords or both, and return ranked hits with their
locators, scores and Feast features.

A query is only ever compared with vectors of the same model version: each view is searched
with a filter on ``model_version``, so vectors from two model versions never mix. Hits of views
in different model spaces are fused by rank (RRF), never by raw scores (docs/search.md).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
from feast import FeatureStore, FeatureView

from mm_feast.core.errors import InvalidArgument, NotFound, QueryFileError, RepoConfigError
from mm_feast.encoders import Encoder
from mm_feast.plugin.compat import online_store_of
from mm_feast.media import AudioWindowing, FrameSampling, MediaError, SegmentationConfig, iter_segments
from mm_feast.plugin.milvus.filters import Condition
from mm_feast.plugin.milvus.full_text import Ranker, declared_columns, no_full_text
from mm_feast.services.query import Query
from mm_feast.sources import EmbeddingSource
from mm_feast.services.versions import query_encoder, refuse_other_version, served_version
from mm_feast.plugin.views import VECTOR_FIELD
from mm_feast.pipeline.rows import normalised

logger = logging.getLogger(__name__)

__all__ = ["Condition", "CrossModalSearch", "Hit", "Query", "Ranker", "SearchFilters", "encode_query", "fuse_across_views"]

HIT_FIELDS = (
    "item_id", "uri", "sha256", "modality", "position", "start_s", "end_s", "char_start",
    "char_end", "text", "caption", "safety", "model_id", "model_version", "lineage_id",
)
MODES = ("vector", "keyword", "hybrid")
Mode = Literal["vector", "keyword", "hybrid"]
MAX_TOP_K = 1000
QUERY_CACHE_SIZE = 4096  # text queries whose vectors and content-filter verdicts are kept
#: RRF constant across views (the k of 1 / (k + rank)); 60 as in Cormack et al. and Milvus.
VIEW_RRF_K = 60


@dataclass
class Hit:
    """One search result, ordered by ``score`` (``scores["fused"]``).

    ``scores``: ``vector`` (similarity in the view's model space), ``keyword`` (BM25), ``fused``
    (what the final order is by); a path that did not run is None. ``ranks``: 1-based rank in
    each path and in its view (None when the path did not run or did not find it).
    """

    view: str
    entity_key: str
    score: float
    fields: dict[str, Any]
    space: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Optional[float]] = field(default_factory=dict)
    ranks: dict[str, Optional[int]] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a hit (CLI --json, HTTP and gRPC): its stored fields (item_id,
        locator, lineage_id, ...) beside view, entity_key, score, scores, ranks and features."""
        return {
            "view": self.view, "entity_key": self.entity_key, "score": self.score, **self.fields,
            "scores": dict(self.scores), "ranks": dict(self.ranks), "features": dict(self.features),
        }


@dataclass(frozen=True)
class SearchFilters:
    """What a search may return, as typed values (never a Milvus expression from the caller).

    ``start_s``/``end_s``: segments that start within [start_s, end_s] seconds of their item
    (frames and audio windows; text blocks and images have no time and are left out when either
    is set). ``where``: conditions on stored scalar fields (mm_feast.plugin.milvus.filters).
    """

    modalities: tuple[str, ...] = ()
    start_s: Optional[float] = None
    end_s: Optional[float] = None
    model_version: Optional[str] = None
    exclude_flagged: bool = False
    where: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
                raise InvalidArgument(f"filter {name} must be a number of seconds >= 0, got {value!r}")
        if self.start_s is not None and self.end_s is not None and self.start_s > self.end_s:
            raise InvalidArgument(f"filter start_s ({self.start_s}) is after end_s ({self.end_s})")

    def conditions(self, columns: set[str], version: str) -> list[Condition]:
        found = [Condition("model_version", "==", version)] if "model_version" in columns else []
        if self.modalities and "modality" in columns:
            found.append(Condition("modality", "in", list(self.modalities)))
        if self.start_s is not None:
            found.append(Condition("start_s", ">=", float(self.start_s)))
        if self.end_s is not None:
            found.append(Condition("start_s", "<=", float(self.end_s)))
            found.append(Condition("start_s", ">=", 0.0))
        if self.exclude_flagged and "safety" in columns:
            found.append(Condition("safety", "!=", "flag"))
        return found + list(self.where)


#: How a query file is cut when no view settings apply: 1 s frames and windows.
QUERY_SEGMENTATION = SegmentationConfig(FrameSampling("every_n_seconds", 1.0), AudioWindowing(1.0, 1.0))


def encode_query(encoder: Encoder, query: Query, config: Optional[SegmentationConfig] = None) -> np.ndarray:
    """One normalised vector for the query in ``encoder``'s space (files are pooled over segments,
    cut by ``config`` (the target view's own settings), with audio at the model's rate).

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
    return normalised(rows.mean(axis=0))


def fuse_across_views(per_view: Sequence[Sequence[Hit]], top_k: int, k: int = VIEW_RRF_K) -> list[Hit]:
    """One ranking from several views' rankings.

    Views in one model space are merged by their score, which compares across them (a CLIP
    image view and a CLIP video view). Spaces are then fused by rank: a hit scores RRF,
    1 / (k + its rank in its space), so scores of two spaces (a CLIP cosine, a CLAP cosine, a
    BM25 score) are never compared. Hits of equal rank are ordered by how far each stands above
    the other hits of its space (its z-score there): a space whose best hit stands out, an exact
    match, goes before a space of near-equal hits.
    """
    lists = [list(hits) for hits in per_view if hits]
    by_space: dict[str, list[Hit]] = {}
    for hits in lists:
        by_space.setdefault(hits[0].space, []).extend(hits)
    spaces = [sorted(hits, key=lambda h: h.score, reverse=True) for hits in by_space.values()]
    if len(spaces) <= 1:
        return spaces[0][:top_k] if spaces else []
    ranked = []
    for order, hits in enumerate(spaces):
        within = np.array([h.score for h in hits], dtype=np.float64)
        spread = float(within.std())
        for rank, hit in enumerate(hits, start=1):
            standout = (hit.score - float(within.mean())) / spread if spread > 0 else 0.0
            ranked.append((1.0 / (k + rank), standout, order, hit))
    ranked.sort(key=lambda t: (-t[0], -t[1], t[2]))
    fused = []
    for score, standout, _, hit in ranked[:top_k]:
        hit.scores["space_fused"] = hit.scores.get("fused")
        hit.scores["standout"] = standout
        hit.scores["fused"] = score
        hit.score = score
        fused.append(hit)
    return fused


@dataclass
class _Target:
    """One view a search runs on, with what it needs: an encoder (vector and hybrid modes)."""

    view: FeatureView
    version: str
    encoder: Optional[Encoder] = None
    vector: Optional[np.ndarray] = None


class CrossModalSearch:
    """Searches the embedding views of one Feast repo; encoders and query vectors are cached.

    Safe to share between threads (the HTTP service does): views are searched concurrently.
    """

    def __init__(self, store: FeatureStore, max_workers: int = 8):
        self.store = store
        self._text_vectors: _Lru = _Lru(QUERY_CACHE_SIZE)  # text queries only: a file may change
        self._verdicts: _Lru = _Lru(QUERY_CACHE_SIZE)  # content-filter verdicts of text queries
        self._views_cache: Optional[list[FeatureView]] = None
        self._thresholds: Optional[Any] = None
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="mm-search")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def embedding_views(self, refresh: bool = False) -> list[FeatureView]:
        """The repo's embedding views, read from the registry once (``refresh`` re-reads)."""
        if self._views_cache is None or refresh:
            views = self.store.list_feature_views()
            # by name: the registry's order can differ between processes, and ties keep view order
            self._views_cache = sorted((v for v in views if isinstance(v.batch_source, EmbeddingSource)), key=lambda v: v.name)
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
        if not hasattr(store, "search_hybrid"):
            raise RepoConfigError(
                f"online store {type(store).__name__} has no search_vectors/search_hybrid: set online_store.type"
                " to mm_feast.online_store.MmMilvusOnlineStore in feature_store.yaml"
            )
        return store

    def query_vector(self, encoder: Encoder, query: Query, view: Optional[FeatureView] = None) -> np.ndarray:
        """The query in ``encoder``'s space; a file is cut with ``view``'s segmentation.

        Text queries are cached (bounded); a file is encoded on every call, since it may change.
        """
        segmentation = view.batch_source.segmentation if view is not None and query.kind != "text" else None
        if query.is_file:
            return encode_query(encoder, query, segmentation)
        return self._text_vectors.get_or_make((encoder.space, query.value), lambda: encode_query(encoder, query))

    def submit(self, job: Any) -> Any:
        """Run ``job()`` on the search's thread pool; returns its future."""
        return self._pool.submit(job)

    def nearest(self, view: FeatureView, vector: np.ndarray, encoder: Encoder, top_k: int = 10,
                filters: Optional[SearchFilters] = None) -> list[Hit]:
        """Top-k rows of one view for a vector already in ``encoder``'s space (the served one)."""
        target = _Target(view, encoder.version, encoder, np.asarray(vector, dtype=np.float32))
        return self._search_view(self._online_store(), target, "vector", None, top_k, filters or SearchFilters(), Ranker(), top_k)

    def warm(self, views: Optional[Sequence[str]] = None) -> list[str]:
        """Load the encoders and Milvus collections of these views (all by default): the first
        query then pays no model load, collection load or first-call cost."""
        warmed = []
        for view in self._views(views):
            encoder = query_encoder(self.store, view)
            if encoder.supports("text"):
                encoder.encode("text", ["warm up"])
            if not encoder.weights_loaded:  # what a query of another modality would load (a bound audio tower)
                encoder.load_weights()
            self._online_store().search_vectors(
                config=self.store.config, table=view, vector_field=VECTOR_FIELD,
                query=np.ones(_dim(view), dtype=np.float32), top_k=1, output_fields=[],
            )
            warmed.append(view.name)
        return warmed

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
        mode: Mode = "vector",
        filters: Optional[SearchFilters] = None,
        ranker: Optional[Ranker] = None,
        candidates: Optional[int] = None,
    ) -> list[Hit]:
        """Top-k hits over the chosen views (or every embedding view that can take the query).

        ``mode``: ``vector`` (the query's embedding), ``keyword`` (BM25 over the views'
        full-text fields; text queries only) or ``hybrid`` (both, fused in Milvus by ``ranker``,
        RRF by default, each path cut at ``candidates``, default 3 x top_k).

        Each view is searched in the model version it serves (mm_feast.versions); naming another
        ``model_version`` raises ``CrossVersionQueryError`` instead of comparing two spaces.
        ``exclude_flagged`` leaves out rows a content filter flagged (``safety == "flag"``).
        ``screen`` runs the content filters on the query first: a blocked query raises
        ``QueryBlocked`` before any model sees it. Views are searched concurrently.
        """
        if isinstance(query, str):
            query = Query.parse(query)
        if mode not in MODES:
            raise InvalidArgument(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InvalidArgument(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        if mode != "vector" and query.kind != "text":
            raise InvalidArgument(f"{mode} search needs a text query, not a {query.kind} file: use mode vector")
        filters = filters or SearchFilters()
        filters = replace(
            filters,
            modalities=tuple(modalities or filters.modalities),
            model_version=model_version or filters.model_version,
            exclude_flagged=exclude_flagged or filters.exclude_flagged,
        )
        if screen:
            self.screen(query)
        online_store = self._online_store()
        targets = self._targets(query, views, mode, filters)
        query_string = query.text() if mode != "vector" else None
        if mode != "vector":
            self._check_query_words(query_string)
        self._encode(query, targets)
        limit = max(int(candidates or 3 * top_k), top_k)
        ranker = ranker or Ranker()

        def run(target: _Target) -> list[Hit]:
            return self._search_view(online_store, target, mode, query_string, top_k, filters, ranker, limit)

        per_view = list(self._pool.map(run, targets)) if len(targets) > 1 else [run(t) for t in targets]
        if len({h.space for hits in per_view for h in hits}) > 1:
            logger.debug("hits span several model spaces: fused by rank (RRF, k=%d)", VIEW_RRF_K)
        hits = fuse_across_views(per_view, top_k)
        for rank, hit in enumerate(hits, start=1):
            hit.ranks["fused"] = rank
        if features:
            self._join_features(hits, list(features))
        return hits

    def _targets(self, query: Query, views: Optional[Sequence[str]], mode: Mode, filters: SearchFilters) -> list[_Target]:
        """The views to search, with the encoder (and so the served version) of each."""
        from mm_feast.encoders.cache import encoder_class

        targets = []
        for view in self._views(views):
            source = view.batch_source
            if filters.modalities and source.segment_modality not in filters.modalities:  # a soundtrack is audio
                continue
            lacking = {c.field for c in filters.where} - {f.name for f in view.features}
            if lacking and not views:  # a condition on a field the view lacks leaves the view out
                continue
            if mode != "vector" and not declared_columns(view.tags):
                if views:
                    raise no_full_text(view.name)
                continue
            bridge = None
            if mode != "keyword" and query.kind not in encoder_class(source.model_id).modalities:
                bridge = self._encoder_in_space_of(view, query.kind, filters.model_version)
                if bridge is None:
                    if views:
                        raise InvalidArgument(f"view '{view.name}' ({source.model_id}) cannot take a {query.kind} query")
                    continue
            if mode == "keyword":
                targets.append(_Target(view, self._served_version(view, filters.model_version)))
                continue
            encoder = query_encoder(self.store, view, filters.model_version)
            targets.append(_Target(view, encoder.version, bridge or encoder))
        if not targets:
            if not self.embedding_views():
                raise InvalidArgument(
                    f"the repo {self.store.repo_path} has no embedding views: run `feast apply` in it first"
                )
            fields = {f.name for v in self.embedding_views() for f in v.features}
            unknown = sorted({c.field for c in filters.where} - fields)
            if unknown:
                raise InvalidArgument(f"filter on {unknown}: no embedding view has such a field; fields: {sorted(fields)}")
            if mode != "vector":
                raise InvalidArgument(f"no embedding view in this repo has a full-text field for {mode} search")
            raise InvalidArgument(f"no embedding view in this repo takes a {query.kind} query")
        return targets

    def _encoder_in_space_of(self, view: FeatureView, kind: str, model_version: Optional[str]) -> Optional[Encoder]:
        """Another view's encoder that takes ``kind`` and puts it in ``view``'s space (an audio
        tower bound into CLIP's space encodes a sound query for a CLIP frame view), or None."""
        from mm_feast.encoders.cache import encoder_class

        space = query_encoder(self.store, view, model_version).space
        for other in self.embedding_views():
            if other.name != view.name and kind in encoder_class(other.batch_source.model_id).modalities:
                encoder = query_encoder(self.store, other)
                if encoder.space == space and encoder.supports(kind):
                    return encoder
        return None

    def _served_version(self, view: FeatureView, model_version: Optional[str]) -> str:
        served = served_version(self.store, view.name, view, cached=True)
        refuse_other_version(view.name, served, model_version)
        return served

    def _encode(self, query: Query, targets: list[_Target]) -> None:
        """Each distinct (space, segmentation) once, concurrently."""
        groups: dict[tuple[str, Any], list[_Target]] = {}
        for target in targets:
            if target.encoder is not None:
                segmentation = target.view.batch_source.segmentation if query.kind != "text" else None
                groups.setdefault((target.encoder.space, _segmentation_key(segmentation)), []).append(target)
        firsts = [group[0] for group in groups.values()]
        vectors = list(self._pool.map(lambda t: self.query_vector(t.encoder, query, t.view), firsts)) if len(firsts) > 1 else [
            self.query_vector(t.encoder, query, t.view) for t in firsts
        ]
        for group, vector in zip(groups.values(), vectors):
            for target in group:
                target.vector = vector

    @staticmethod
    def _check_query_words(text: Optional[str]) -> None:
        if not text or not text.strip():
            raise InvalidArgument("a keyword or hybrid search needs query words, got an empty query")

    def _search_view(
        self,
        online_store: Any,
        target: _Target,
        mode: Mode,
        query_string: Optional[str],
        top_k: int,
        filters: SearchFilters,
        ranker: Ranker,
        candidates: int,
    ) -> list[Hit]:
        view = target.view
        join_key = view.entity_columns[0].name
        columns = {c.name for c in view.features}
        output = [f for f in HIT_FIELDS if f in columns]
        where = filters.conditions(columns, target.version)
        config = self.store.config
        if mode == "vector":
            rows = online_store.search_vectors(
                config=config, table=view, vector_field=VECTOR_FIELD, query=target.vector, top_k=top_k,
                output_fields=output, where=where,
            )[0]
        elif mode == "keyword":
            rows = online_store.search_keyword(config=config, table=view, query_string=query_string, top_k=top_k, output_fields=output, where=where)
        else:
            rows = online_store.search_hybrid(
                config=config, table=view, vector_field=VECTOR_FIELD, query=target.vector, query_string=query_string,
                top_k=top_k, output_fields=output, where=where, ranker=ranker, candidates=candidates,
            )
        space = target.encoder.space if target.encoder is not None else f"bm25:{view.name}"
        hits = []
        for rank, row in enumerate(rows, start=1):
            fields = {k: row.get(k) for k in output}
            fields[join_key] = row[join_key]
            if mode == "vector":
                vector_score = _score(row["distance"], view)
                scores = {"vector": vector_score, "keyword": None, "fused": vector_score}
                ranks = {"vector": rank, "keyword": None}
            elif mode == "keyword":
                scores = {"vector": None, "keyword": float(row["distance"]), "fused": float(row["distance"])}
                ranks = {"vector": None, "keyword": rank}
            else:
                raw = row["scores"]["vector"]
                scores = {"vector": None if raw is None else _score(raw, view), "keyword": row["scores"]["keyword"], "fused": float(row["distance"])}
                ranks = dict(row["ranks"])
            ranks["view"] = rank
            hits.append(Hit(view.name, str(row[join_key]), float(scores["fused"]), fields, space, scores=scores, ranks=ranks))
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
        else:  # the same words get the same verdict: screened once per cached text query
            verdict = self._verdicts.get_or_make(query.value, lambda: scan_text(query.value, thresholds))
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


class _Lru:
    """A bounded, thread-safe memo: the service's caches must not grow with every new query."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def _segmentation_key(config: Optional[SegmentationConfig]) -> Any:
    return None if config is None else repr(config.to_dict())


def _dim(view: FeatureView) -> int:
    return int(next(f.vector_length for f in view.features if f.name == VECTOR_FIELD))
