"""Feast's file offline store for mm-feast sources: it only reads.

Ingestion belongs to the compute engine (``mm_feast.plugin.engine``), which `feast materialize`
runs; reads (``get_historical_features``, the engine's own pulls) never scan, encode or write. A
source that was never materialized is a clear error, not an empty training set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import dask.dataframe as dd
import numpy as np
import pandas as pd

from feast.infra.offline_stores.dask import DaskOfflineStore, DaskOfflineStoreConfig
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.repo_config import RepoConfig

from mm_feast.core.errors import UserError
from mm_feast.sources import EmbeddingSource, MediaSource

logger = logging.getLogger(__name__)


class MmFileOfflineStoreConfig(DaskOfflineStoreConfig):
    type: Literal["mm_feast.offline_store.MmFileOfflineStore"] = "mm_feast.offline_store.MmFileOfflineStore"


def require_materialized(config: RepoConfig, source: Any) -> None:
    """An mm-feast source's parquet is written by `feast materialize`; say so when it is missing."""
    if not isinstance(source, (EmbeddingSource, MediaSource)):
        return
    repo_path = Path(config.repo_path) if config.repo_path else Path(".")
    path = Path(source.path) if Path(source.path).is_absolute() else repo_path / source.path
    if not path.exists():
        raise UserError(
            f"source '{source.name}' has no offline rows yet ({path}): run `feast materialize` "
            "(or `mm-feast ingest`) first, with `batch_engine: {type: mm_feast.plugin.engine."
            "MmLocalComputeEngine}` in feature_store.yaml so that materialize runs the pipeline"
        )


class MmFileOfflineStore(DaskOfflineStore):
    @staticmethod
    def pull_latest_from_table_or_query(config: RepoConfig, data_source: Any, *args: Any, **kwargs: Any) -> RetrievalJob:
        require_materialized(config, data_source)
        return DaskOfflineStore.pull_latest_from_table_or_query(config, data_source, *args, **kwargs)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source: Any, *args: Any, **kwargs: Any) -> RetrievalJob:
        require_materialized(config, data_source)
        return DaskOfflineStore.pull_all_from_table_or_query(config, data_source, *args, **kwargs)

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list,
        feature_refs: list[str],
        entity_df: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        for view in feature_views:
            require_materialized(config, view.batch_source)
        if not isinstance(entity_df, pd.DataFrame):
            return DaskOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project, full_feature_names, **kwargs
            )
        indexed = entity_df.assign(**{_ROW: np.arange(len(entity_df))})
        job = DaskOfflineStore.get_historical_features(
            config, feature_views, feature_refs, indexed, registry, project, full_feature_names, **kwargs
        )
        joined = job.evaluation_function
        job.evaluation_function = lambda: dd.from_pandas(_keep_every_entity_row(joined().compute(), indexed), npartitions=1)
        return job


_ROW = "__mm_feast_entity_row"


def _keep_every_entity_row(result: pd.DataFrame, indexed: pd.DataFrame) -> pd.DataFrame:
    """Put back entity rows that Feast's Dask join dropped.

    Stock Feast 0.67 drops an entity row entirely (instead of returning null features) when every
    feature row for its key is newer than the entity timestamp: its TTL filter runs after the
    join. A training set must keep every requested row, so missing rows come back with nulls.
    """
    missing = indexed[~indexed[_ROW].isin(result[_ROW])]
    if not missing.empty:
        logger.debug("restoring %d entity rows with no feature row at or before their time", len(missing))
        missing = missing.copy()
        for column in missing.columns:
            if pd.api.types.is_datetime64_any_dtype(missing[column]) and column in result:
                missing[column] = pd.to_datetime(missing[column], utc=True)
        result = pd.concat([result, missing], ignore_index=True)
    return result.sort_values(_ROW).drop(columns=[_ROW]).reset_index(drop=True)
