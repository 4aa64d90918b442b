"""One row schema: every row builder (segment, pooled item, fused) fills exactly the schema's
columns, and each view declares exactly those columns."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from mm_feast.core.schema import (
    ABSENT_FLOAT,
    ABSENT_INT,
    CREATED_FIELD,
    ITEM_COLUMNS,
    RUN_FIELD,
    SEGMENT_COLUMNS,
    TIMESTAMP_FIELD,
    VECTOR_FIELD,
    conform,
    fused_columns,
)
from mm_feast.media import Locator, Segment
from mm_feast.pipeline.rows import fused_row, item_row, segment_row
from mm_feast.sources import ManifestRow

META = [RUN_FIELD, VECTOR_FIELD, TIMESTAMP_FIELD, CREATED_FIELD]
NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


class FakeEncoder:  # only the two attributes a row records; no model is run here
    model_id, version = "m", "v1"


def rows_of_one_text_item() -> list[dict]:
    row = ManifestRow("doc", "/tmp/doc.txt", "text", NOW, sha256="ab" * 32, attributes={"caption": "a doc"})
    segments = [Segment(Locator(row.uri, row.sha256, "text", char_start=a, char_end=b), "x" * (b - a)) for a, b in [(0, 3), (5, 9)]]
    return [segment_row(row, s, np.ones(4) * (i + 1), FakeEncoder(), "run1", NOW) for i, s in enumerate(segments)]


def test_segment_rows_have_the_schema_columns_with_absent_values_where_a_position_does_not_apply() -> None:
    row = rows_of_one_text_item()[0]
    assert list(row) == [*SEGMENT_COLUMNS, *META]
    assert (row["start_s"], row["end_s"], row["char_start"], row["char_end"]) == (ABSENT_FLOAT, ABSENT_FLOAT, 0, 3)


def test_item_rows_pool_their_segments_into_the_item_columns() -> None:
    pooled = item_row(rows_of_one_text_item(), "run2", NOW)
    assert list(pooled) == [*ITEM_COLUMNS, *META]
    assert pooled["n_segments"] == 2 and pooled["caption"] == "a doc" and pooled[RUN_FIELD] == "run2"
    assert np.linalg.norm(pooled[VECTOR_FIELD]) == pytest.approx(1.0)
    assert pooled["lineage_id"] not in {r["lineage_id"] for r in rows_of_one_text_item()}


def test_fused_rows_take_the_anchor_locator_and_the_context_captions() -> None:
    anchor, context = rows_of_one_text_item()
    context = {**context, "caption": "an image", TIMESTAMP_FIELD: datetime(2027, 1, 1, tzinfo=timezone.utc)}
    fused = fused_row("segment_id", anchor, [context], {"group": "g", "parent_lineage_ids": ["a", "b"], "n_parents": 2, "lineage_id": "f"},
                      np.ones(4), "run3", NOW)
    assert list(fused) == [*fused_columns("segment_id"), *META]
    assert fused["segment_id"] == anchor["segment_id"] and fused["char_end"] == 3
    assert fused["caption"] == "an image" and fused[TIMESTAMP_FIELD] == context[TIMESTAMP_FIELD]


def test_conform_refuses_a_column_the_schema_does_not_name() -> None:
    with pytest.raises(KeyError, match="not in the row schema"):
        conform(ITEM_COLUMNS, {"item_id": "x", "colour": "red"})
    assert conform({"n": "int64", "ids": "string_list"}, {}) == {"n": ABSENT_INT, "ids": []}


def test_each_view_declares_exactly_the_columns_its_rows_have() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("demo_defs", Path(__file__).parent.parent / "feature_repo" / "definitions.py")
    defs = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(defs)  # type: ignore[union-attr]
    def declared(view) -> set[str]:  # Feast keeps join keys in entity_columns, features in schema
        return {f.name for f in [*view.schema, *view.entity_columns] if f.name != VECTOR_FIELD}

    assert declared(defs.text_block_embeddings) == set(SEGMENT_COLUMNS)
    assert declared(defs.video_embeddings) == set(ITEM_COLUMNS)
    assert declared(defs.report_context) == set(fused_columns("segment_id"))
