"""Feast's file offline store, with media ingestion in front of every read of an mm-feast source.

Why here: the offline store is the one Feast extension point that both ``feast materialize``
and ``get_historical_features`` go through. Ingestion is incremental, so a read after the first
costs a scan and hash of the collection, never a model forward pass (DESIGN defect 8).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from feast.infra.offline_stores.dask import DaskOfflineStore, DaskOfflineStoreConfig
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.repo_config import RepoConfig

from mm_feast.ingest import ensure_embeddings, scan_media
from mm_feast.sources import EmbeddingSource, MediaSource

logger = logging.getLogger(__name__)


class MmFileOfflineStoreConfig(DaskOfflineStoreConfig):
    type: Literal["mm_feast.offline_store.MmFileOfflineStore"] = "mm_feast.offline_store.MmFileOfflineStore"
    ingest_on_read: bool = True
    """Bring media sources up to date before each read; off means reads see only what exists."""
    batch_size: int = 32


def prepare_source(config: RepoConfig, source: Any) -> None:
    """Scan a MediaSource or ingest an EmbeddingSource so its parquet exists and is current."""
    options = config.offline_store
    if not getattr(options, "ingest_on_read", True):
        return
    repo_path = Path(config.repo_path) if config.repo_path else None
    if isinstance(source, EmbeddingSource):
        ensure_embeddings(source, repo_path, batch_size=getattr(options, "batch_size", 32))
    elif isinstance(source, MediaSource):
        scan_media(source, repo_path)  # writes the manifest parquet Feast then reads


class MmFileOfflineStore(DaskOfflineStore):
    @staticmethod
    def pull_latest_from_table_or_query(config: RepoConfig, data_source: Any, *args: Any, **kwargs: Any) -> RetrievalJob:
        prepare_source(config, data_source)
        return DaskOfflineStore.pull_latest_from_table_or_query(config, data_source, *args, **kwargs)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source: Any, *args: Any, **kwargs: Any) -> RetrievalJob:
        prepare_source(config, data_source)
        return DaskOfflineStore.pull_all_from_table_or_query(config, data_source, *args, **kwargs)

    @staticmethod
    def get_historical_features(config: RepoConfig, feature_views: list, *args: Any, **kwargs: Any) -> RetrievalJob:
        for view in feature_views:
            prepare_source(config, view.batch_source)
        return DaskOfflineStore.get_historical_features(config, feature_views, *args, **kwargs)
