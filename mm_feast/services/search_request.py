"""One search request shape for every front end: the CLI, the HTTP service and the gRPC service
build a ``SearchRequest`` from their input with ``from_dict`` and run it the same way.

``from_dict`` checks every key and type and raises ``InvalidArgument`` naming the bad key, so a
front end answers a bad request with a 4xx and the reason, never with a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from mm_feast.core.errors import InvalidArgument
from mm_feast.plugin.milvus.filters import Condition
from mm_feast.plugin.milvus.full_text import Ranker
from mm_feast.services.query import Query
from mm_feast.services.search import MODES, CrossModalSearch, Hit, SearchFilters

_FILTER_KEYS = {"modalities", "start_s", "end_s", "model_version", "exclude_flagged", "where"}
_RANKER_KEYS = {"kind", "k", "weights"}
# No "screen": a caller cannot turn the content filters off for its query (docs/governance.md).
_KEYS = {"query", "kind", "text", "mode", "views", "top_k", "features", "filters", "ranker", "candidates"}


@dataclass(frozen=True)
class SearchRequest:
    """What to search for and how; ``query`` is text, or a file path when ``kind`` names a medium."""

    query: str
    kind: Optional[str] = None
    text: bool = False
    mode: str = "vector"
    views: tuple[str, ...] = ()
    top_k: int = 10
    features: tuple[str, ...] = ()
    filters: SearchFilters = field(default_factory=SearchFilters)
    ranker: Ranker = field(default_factory=Ranker)
    candidates: Optional[int] = None

    @staticmethod
    def from_dict(body: Mapping[str, Any], query: Optional[str] = None, kind: Optional[str] = None) -> "SearchRequest":
        """A request from JSON-like data; ``query``/``kind`` override the body (an uploaded file)."""
        if not isinstance(body, Mapping):
            raise InvalidArgument(f"a search request is a JSON object, got {type(body).__name__}")
        _no_unknown(body, _KEYS, "request")
        text = query if query is not None else body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument("'query' must be non-empty text")
        mode = _typed(body, "mode", str, "vector")
        if mode not in MODES:
            raise InvalidArgument(f"'mode' must be one of {', '.join(MODES)}, got {mode!r}")
        filters = body.get("filters") or {}
        if not isinstance(filters, Mapping):
            raise InvalidArgument("'filters' must be an object")
        _no_unknown(filters, _FILTER_KEYS, "filters")
        ranker = body.get("ranker") or {}
        if not isinstance(ranker, Mapping):
            raise InvalidArgument("'ranker' must be an object")
        _no_unknown(ranker, _RANKER_KEYS, "ranker")
        return SearchRequest(
            query=text,
            kind=kind if kind is not None else _typed(body, "kind", str, None),
            text=_typed(body, "text", bool, False),
            mode=mode,
            views=_strings(body, "views"),
            top_k=_typed(body, "top_k", int, 10),
            features=_strings(body, "features"),
            filters=SearchFilters(
                modalities=_strings(filters, "modalities"),
                start_s=_number(filters, "start_s"),
                end_s=_number(filters, "end_s"),
                model_version=_typed(filters, "model_version", str, None),
                exclude_flagged=_typed(filters, "exclude_flagged", bool, False),
                where=tuple(_condition(c, i) for i, c in enumerate(_list(filters, "where"))),
            ),
            ranker=Ranker(
                kind=_typed(ranker, "kind", str, "rrf"),  # type: ignore[arg-type]
                k=_typed(ranker, "k", int, 60),
                weights=tuple(_number_item(w, "ranker.weights") for w in _list(ranker, "weights")) or (0.5, 0.5),
            ),
            candidates=_typed(body, "candidates", int, None),
        )

    def parsed_query(self) -> Query:
        return Query.parse(self.query, kind=self.kind, text=self.text)

    def run(self, search: CrossModalSearch, query: Optional[Query] = None) -> list[Hit]:
        """The search itself; ``query`` when the caller has parsed (and checked) it already."""
        return search.search(
            query or self.parsed_query(),
            views=list(self.views) or None,
            top_k=self.top_k,
            features=list(self.features) or None,
            mode=self.mode,  # type: ignore[arg-type]
            filters=self.filters,
            ranker=self.ranker,
            candidates=self.candidates,
        )


def _no_unknown(body: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidArgument(f"unknown {what} key(s) {unknown}; known: {sorted(known)}")


def _typed(body: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = body.get(key, default)
    if value is None or value is default:
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"'{key}' must be {'an integer' if kind is int else kind.__name__}, got {value!r}")
    return value


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key) or []
    if not isinstance(value, list):
        raise InvalidArgument(f"'{key}' must be a list, got {value!r}")
    return value


def _strings(body: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _list(body, key)
    if not all(isinstance(v, str) for v in values):
        raise InvalidArgument(f"'{key}' must be a list of strings, got {values!r}")
    return tuple(values)


def _number_item(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"'{key}' must hold numbers, got {value!r}")
    return float(value)


def _number(body: Mapping[str, Any], key: str) -> Optional[float]:
    value = body.get(key)
    return None if value is None else _number_item(value, key)


def _condition(raw: Any, index: int) -> Condition:
    if not isinstance(raw, Mapping) or set(raw) != {"field", "op", "value"}:
        raise InvalidArgument(f"filters.where[{index}] must be an object with exactly field, op and value, got {raw!r}")
    if not isinstance(raw["field"], str) or not isinstance(raw["op"], str):
        raise InvalidArgument(f"filters.where[{index}]: field and op must be strings, got {raw!r}")
    return Condition(raw["field"], raw["op"], raw["value"])
