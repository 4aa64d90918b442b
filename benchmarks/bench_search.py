"""Top-10 search and single-row serving latency at N vectors, ours vs stock Feast, Lite vs server.

Baseline: stock Feast 0.67 `MilvusOnlineStore` on the same data, in the same run. Recall@10 is
measured against an exact numpy search. Run:
    python benchmarks/bench_search.py [--n 10000] [--queries 200] [--server-uri http://127.0.0.1:19530]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.online_stores.milvus_online_store.milvus import MilvusOnlineStoreConfig
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Array, Float32, Int64, String

from benchmarks.common import LATENCY_HEADER, measure
from mm_feast.plugin.milvus.store import MmMilvusOnlineStoreConfig

DIM = 512


@dataclass
class Setup:
    name: str
    online_store: Any
    ours: bool


def build_store(setup: Setup, workdir: Path, vectors: np.ndarray) -> tuple[FeatureStore, float]:
    config = RepoConfig(
        project="bench_" + "".join(c for c in setup.name.lower() if c.isalnum()),
        provider="local",
        registry=RegistryConfig(path=str(workdir / "registry.db")),
        online_store=setup.online_store,
        offline_store={"type": "file"},
        repo_path=workdir,
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="docs",
        entities=[item],
        schema=[
            Field(name="item_id", dtype=Int64),
            Field(name="embedding", dtype=Array(Float32), vector_index=True, vector_length=DIM, vector_search_metric="COSINE"),
            Field(name="caption", dtype=String),
        ],
        source=FileSource(path=str(workdir / "unused.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )
    store.apply([item, view])
    frame = pd.DataFrame(
        {"item_id": np.arange(len(vectors)), "embedding": list(vectors), "caption": [f"item {i}" for i in range(len(vectors))],
         "event_timestamp": datetime.now(timezone.utc)}
    )
    start = time.perf_counter()
    for chunk in range(0, len(frame), 1000):
        store.write_to_online_store("docs", frame.iloc[chunk : chunk + 1000])
    return store, len(frame) / (time.perf_counter() - start)


def exact_top10(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(q @ x.T), axis=1)[:, :10]


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact)]))


def run_setup(setup: Setup, vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray) -> list[str]:
    workdir = Path(tempfile.mkdtemp(prefix="bench_search_"))
    store, write_rate = build_store(setup, workdir, vectors)
    rows = []
    n = len(queries)
    serve = measure(f"{setup.name}: get_online_features, 1 row", lambda i: store.get_online_features(
        features=["docs:caption", "docs:embedding"], entity_rows=[{"item_id": int(i * 7919 % len(vectors))}]), n)
    rows.append(serve.row(f"write {write_rate:.0f} rows/s"))

    found: list[list[int]] = []

    def retrieve(i: int) -> None:
        result = store.retrieve_online_documents_v2(features=["docs:caption", "docs:embedding"], query=queries[i % n].tolist(), top_k=10).to_dict()
        if len(found) < n:
            found.append([int(v) for v in result["item_id"]])

    docs = measure(f"{setup.name}: retrieve_online_documents_v2 top-10", retrieve, n, warmup=0)
    rows.append(docs.row(f"recall@10 {recall(found, exact):.3f}"))
    if setup.ours:
        online = store._get_provider().online_store
        view = store.get_feature_view("docs")
        hits: list[list[int]] = []

        def search(i: int) -> None:
            result = online.search_vectors(store.config, view, "embedding", queries[i % n], 10, ["caption"])[0]
            if len(hits) < n:
                hits.append([int(h["item_id"]) for h in result])

        fast = measure(f"{setup.name}: search_vectors top-10", search, n, warmup=0)
        rows.append(fast.row(f"recall@10 {recall(hits, exact):.3f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--server-uri", default=None, help="also measure a Milvus server (e.g. http://127.0.0.1:19530)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    rng = np.random.default_rng(0)
    # clustered vectors (like real embeddings), not uniform noise: IVF/HNSW recall is meaningful
    centers = rng.normal(size=(64, DIM))
    vectors = (centers[rng.integers(64, size=args.n)] + 0.6 * rng.normal(size=(args.n, DIM))).astype(np.float32)
    queries = (centers[rng.integers(64, size=args.queries)] + 0.6 * rng.normal(size=(args.queries, DIM))).astype(np.float32)
    exact = exact_top10(queries, vectors)

    setups = [
        Setup("stock Feast, Lite", lambda d: MilvusOnlineStoreConfig(path=str(d / "stock.db"), embedding_dim=DIM), ours=False),
        Setup("mm-feast, Lite FLAT", lambda d: MmMilvusOnlineStoreConfig(path=str(d / "ours.db")), ours=True),
        Setup("mm-feast, Lite IVF_FLAT", lambda d: MmMilvusOnlineStoreConfig(path=str(d / "ivf.db"), index_type="IVF_FLAT", index_params={"nlist": 128}, search_params={"nprobe": 16}), ours=True),
    ]
    if args.server_uri:
        setups += [
            Setup("stock Feast, server", lambda d: MilvusOnlineStoreConfig(uri=args.server_uri, embedding_dim=DIM), ours=False),
            Setup("mm-feast, server HNSW", lambda d: MmMilvusOnlineStoreConfig(uri=args.server_uri, index_type="HNSW", search_params={"ef": 64}), ours=True),
        ]
    print(f"{args.n} x {DIM}-d vectors (64 clusters), {args.queries} queries, top-10, COSINE\n")
    print(LATENCY_HEADER)
    for setup in setups:
        tmp = Path(tempfile.mkdtemp(prefix="bench_cfg_"))
        concrete = Setup(setup.name, setup.online_store(tmp), setup.ours)
        for row in run_setup(concrete, vectors, queries, exact):
            print(row, flush=True)


if __name__ == "__main__":
    main()
