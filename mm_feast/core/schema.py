"""The one row schema of mm-feast's embedding rows: column names, their types and "absent" values.

Milvus 2.3 scalar fields are not nullable, so a position that does not apply to a modality (a
frame time for a text block) is stored as -1, never as null. Everything that builds or reads rows
(ingest, pooling, fusion, the Feast views, lineage) takes its names from here.
"""

from __future__ import annotations

from typing import Any, Final, Mapping

TIMESTAMP_FIELD: Final = "event_timestamp"
CREATED_FIELD: Final = "created_timestamp"
VECTOR_FIELD: Final = "embedding"
ABSENT_FLOAT: Final = -1.0
ABSENT_INT: Final = -1

# name -> Feast type name ("string", "float64", "int64", "string_list"); the views map them to
# Feast types, the row builders fill exactly these keys.
LOCATOR_COLUMNS: Final = {"uri": "string", "sha256": "string", "modality": "string"}
POSITION_COLUMNS: Final = {
    "position": "string",
    "start_s": "float64",
    "end_s": "float64",
    "char_start": "int64",
    "char_end": "int64",
    "text": "string",
    "caption": "string",
}
MODEL_COLUMNS: Final = {"model_id": "string", "model_version": "string", "lineage_id": "string"}
# The content filters' verdict on the input ("allow" or "flag"; blocked inputs are never stored,
# "" where no filter ran: rows stored before the filters existed, or pushed rows).
GOVERNANCE_COLUMNS: Final = {"safety": "string"}
SEGMENT_COLUMNS: Final = {"segment_id": "string", "item_id": "string", **LOCATOR_COLUMNS, **POSITION_COLUMNS, **GOVERNANCE_COLUMNS, **MODEL_COLUMNS}
ITEM_COLUMNS: Final = {"item_id": "string", **LOCATOR_COLUMNS, "caption": "string", "n_segments": "int64", **GOVERNANCE_COLUMNS, **MODEL_COLUMNS}
FUSED_EXTRA_COLUMNS: Final = {"group": "string", "parent_lineage_ids": "string_list", "n_parents": "int64"}
FUSED_COLUMNS: Final = {"item_id": "string", **LOCATOR_COLUMNS, **POSITION_COLUMNS, **FUSED_EXTRA_COLUMNS, **GOVERNANCE_COLUMNS, **MODEL_COLUMNS}
ALL_COLUMNS: Final = {**SEGMENT_COLUMNS, **ITEM_COLUMNS, **FUSED_COLUMNS}
RUN_FIELD: Final = "run_id"

_ABSENT_BY_TYPE: Final = {"string": "", "float64": ABSENT_FLOAT, "int64": ABSENT_INT, "string_list": ()}


def fused_columns(join_key: str) -> dict[str, str]:
    """A fused view's columns: its anchor's join key (a segment id or item id) first."""
    return {join_key: "string", **FUSED_COLUMNS}


def absent(kind: str) -> Any:
    """The stored "absent" value of a column type (a fresh list for list columns)."""
    value = _ABSENT_BY_TYPE[kind]
    return list(value) if kind == "string_list" else value


def conform(columns: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """A row with exactly ``columns``, in their order: absent values where ``values`` has none.

    A key the schema does not name is a bug in the builder, so it raises instead of being dropped."""
    unknown = set(values) - set(columns)
    if unknown:
        raise KeyError(f"not in the row schema: {sorted(unknown)}")
    out = {}
    for name, kind in columns.items():
        value = values.get(name)
        out[name] = absent(kind) if value is None else value
    return out
