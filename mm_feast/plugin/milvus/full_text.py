"""Milvus' own BM25 full-text search for a view's text columns: which columns get it, what it adds
to a collection, whether an endpoint can do it, and how a hybrid search fuses its two paths.

A view names its full-text columns in the tag ``mm_feast.full_text`` (comma-separated string
features). Each gets Milvus' analyzer, a sparse field ``<column>_bm25`` filled by a BM25 function
inside Milvus, and a ``SPARSE_INVERTED_INDEX``. Milvus added BM25 in 2.5: Milvus Lite 2.5.1 has
it, the 2.3 server on PyPI does not. There, the collection is made without the sparse fields (so
vector search keeps working) and a keyword search fails naming the server version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal, Optional, Sequence

from pymilvus import AnnSearchRequest, Function, FunctionType, RRFRanker, WeightedRanker

from mm_feast.core.errors import InvalidArgument

FULL_TEXT_TAG: Final = "mm_feast.full_text"
SPARSE_SUFFIX: Final = "_bm25"
MIN_BM25_VERSION: Final = (2, 5, 0)
BM25_INDEX: Final = {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "BM25"}


class FullTextUnavailable(InvalidArgument):
    """A keyword or hybrid search where the collection has no BM25 field: the message says why."""

    code = "full_text_unavailable"


def no_full_text(view: str) -> FullTextUnavailable:
    return FullTextUnavailable(
        f"view '{view}' has no full-text field: keyword and hybrid search need one (declare its"
        f' String columns in the view tag {FULL_TEXT_TAG}, e.g. "text")'
    )


def declared_columns(tags: Optional[dict[str, str]]) -> tuple[str, ...]:
    """The columns a view's ``mm_feast.full_text`` tag names, in order ("" or absent: none)."""
    raw = (tags or {}).get(FULL_TEXT_TAG, "")
    return tuple(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))


def sparse_field(column: str) -> str:
    return f"{column}{SPARSE_SUFFIX}"


def bm25_function(column: str) -> Function:
    return Function(
        name=f"{column}_bm25_fn",
        function_type=FunctionType.BM25,
        input_field_names=[column],
        output_field_names=[sparse_field(column)],
    )


def parse_version(text: str) -> tuple[int, int, int]:
    """``"v2.3.5"``, ``"2.5.1"``, ``"v2.5.0-beta"`` -> (2, 3, 5); unparseable -> (0, 0, 0)."""
    found = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not found:
        return (0, 0, 0)
    return (int(found.group(1)), int(found.group(2)), int(found.group(3) or 0))


def supports_bm25(version: str) -> bool:
    return parse_version(version) >= MIN_BM25_VERSION


def endpoint_version(client: Any, is_lite: bool) -> str:
    """The Milvus version behind a client. Milvus Lite does not answer GetVersion: its package does."""
    if is_lite:
        import milvus_lite

        return f"lite {milvus_lite.__version__}"
    return str(client.get_server_version())


def version_number(version: str) -> str:
    return version.removeprefix("lite ")


def minimum_text() -> str:
    return ".".join(map(str, MIN_BM25_VERSION))


@dataclass(frozen=True)
class Ranker:
    """How a hybrid search fuses its vector and keyword paths: RRF (``k``) or weighted scores.

    RRF scores a hit ``sum(1 / (k + rank))`` over the paths that found it (ranks from 1), so it
    needs no score calibration; ``weighted`` mixes Milvus' normalised scores with ``weights``
    (vector first, then one weight per keyword field).
    """

    kind: Literal["rrf", "weighted"] = "rrf"
    k: int = 60
    weights: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if self.kind not in ("rrf", "weighted"):
            raise InvalidArgument(f"ranker must be 'rrf' or 'weighted', got {self.kind!r}")
        if self.kind == "rrf" and not (isinstance(self.k, int) and self.k >= 1):
            raise InvalidArgument(f"rrf k must be a positive integer, got {self.k!r}")
        if self.kind == "weighted" and (not self.weights or any(not 0 <= w <= 1 for w in self.weights)):
            raise InvalidArgument(f"weighted ranker weights must lie in [0, 1], got {self.weights!r}")

    def to_milvus(self, n_paths: int) -> Any:
        if self.kind == "rrf":
            return RRFRanker(self.k)
        weights = list(self.weights)
        if len(weights) < n_paths:  # one keyword weight serves every keyword field
            weights += [weights[-1]] * (n_paths - len(weights))
        return WeightedRanker(*weights[:n_paths])


def requests(
    vector_field: Optional[str],
    vector: Optional[Sequence[float]],
    vector_params: dict[str, Any],
    text_columns: Sequence[str],
    query_string: Optional[str],
    limit: int,
    expr: str,
) -> list[AnnSearchRequest]:
    """One Milvus search request per path: the vector field, then each BM25 field."""
    found = []
    if vector_field is not None and vector is not None:
        found.append(AnnSearchRequest(data=[list(vector)], anns_field=vector_field, param=vector_params, limit=limit, expr=expr))
    if query_string is not None:
        for column in text_columns:
            found.append(
                AnnSearchRequest(
                    data=[query_string], anns_field=sparse_field(column), param={"metric_type": "BM25"}, limit=limit, expr=expr
                )
            )
    return found
