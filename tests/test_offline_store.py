"""Point-in-time training sets keep every entity row (a Feast 0.67 Dask defect we fix)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Float32, String

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _store(tmp_path: Path, offline_store: dict) -> FeatureStore:
    pd.DataFrame(
        {"segment_id": ["a", "b"], "caption": ["first", "second"], "score": [1.0, 2.0], "event_timestamp": [T0, T0]}
    ).to_parquet(tmp_path / "rows.parquet")
    config = RepoConfig(
        project="pit",
        provider="local",
        registry=RegistryConfig(path=str(tmp_path / "registry.db")),
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        offline_store=offline_store,
        repo_path=tmp_path,
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    segment = Entity(name="segment", join_keys=["segment_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="rows",
        entities=[segment],
        schema=[Field(name="segment_id", dtype=String), Field(name="caption", dtype=String), Field(name="score", dtype=Float32)],
        source=FileSource(path=str(tmp_path / "rows.parquet"), timestamp_field="event_timestamp"),
    )
    store.apply([segment, view])
    return store


@pytest.mark.parametrize(
    "offline_store",
    [
        {"type": "mm_feast.offline_store.MmFileOfflineStore"},
        pytest.param(
            {"type": "file"},
            marks=pytest.mark.xfail(strict=True, reason="stock Feast 0.67 Dask store drops entity rows older than every feature row"),
        ),
    ],
    ids=["mm_feast", "stock"],
)
def test_entity_rows_before_any_feature_row_come_back_with_nulls(tmp_path: Path, offline_store: dict):
    store = _store(tmp_path, offline_store)
    entity_df = pd.DataFrame(
        {
            "segment_id": ["a", "b", "a", "unknown"],
            "event_timestamp": [T0 + timedelta(hours=1), T0 - timedelta(days=1), T0 - timedelta(days=1), T0 + timedelta(hours=1)],
        }
    )
    result = store.get_historical_features(entity_df=entity_df, features=["rows:caption", "rows:score"]).to_df()

    assert len(result) == len(entity_df)
    by_row = {(r.segment_id, r.event_timestamp): r for r in result.itertuples()}
    assert by_row[("a", T0 + timedelta(hours=1))].caption == "first"
    assert pd.isna(by_row[("b", T0 - timedelta(days=1))].caption)  # its only row is in the future
    assert pd.isna(by_row[("a", T0 - timedelta(days=1))].score)
    assert pd.isna(by_row[("unknown", T0 + timedelta(hours=1))].caption)
