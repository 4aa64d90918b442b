"""The one row schema of mm-feast's embedding rows: column names, their types and "absent" values.

Milvus 2.3 scalar fields are not nullable, so a position that does not apply to a modality (a
frame time for a text block) is stored as -1, never as null. Everything that builds or reads rows
(ingest, pooling, fusion, the Feast views, lineage) takes its names from here.
"""

from __future__ import annotations

from typing import Final

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
SEGMENT_COLUMNS: Final = {"segment_id": "string", "item_id": "string", **LOCATOR_COLUMNS, **POSITION_COLUMNS, **MODEL_COLUMNS}
ITEM_COLUMNS: Final = {"item_id": "string", **LOCATOR_COLUMNS, "caption": "string", "n_segments": "int64", **MODEL_COLUMNS}
FUSED_EXTRA_COLUMNS: Final = {"group": "string", "parent_lineage_ids": "string_list", "n_parents": "int64"}
