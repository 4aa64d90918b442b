"""Top-10 search, single-row serving and build cost at 10k to 1M vectors (512-d), with recall.

Setups in one run, on the same vectors (64 clusters, like real embeddings, so IVF/HNSW recall
means something): numpy brute force (the exact baseline), mm-feast on Milvus Lite FLAT and
IVF_FLAT, mm-feast on a Milvus server with HNSW (``--server-uri``; the build waits until the
index covers every row), stock Feast 0.67's own Milvus store on the same Milvus Lite as ours
(setup ``stock-same``: what our store's code costs, the Milvus version held equal), and stock
Feast 0.67 as pip installs it, Milvus Lite 3.2.x, in its own venv (``--stock-python``; this same
file runs there with ``--stock-only``). Writes go through Feast's ``write_to_online_store``.

    python -m benchmarks.bench_scale --sizes 10000 50000 100000 --server-uri http://127.0.0.1:19530 \
        --stock-python /tmp/stockvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

DIM = 512
N_QUERIES = 200
IVF_NPROBE = 32


def ivf_params(n: int) -> tuple[dict[str, int], dict[str, int]]:
    """IVF_FLAT's (index_params, search_params) for n rows: nlist 4·sqrt(n), at most 4096."""
    return {"nlist": int(min(4096, 4 * np.sqrt(n)))}, {"nprobe": IVF_NPROBE}


def data(n: int, queries: int = N_QUERIES) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(64, DIM))
    vectors = (centers[rng.integers(64, size=n)] + 0.6 * rng.normal(size=(n, DIM))).astype(np.float32)
    qs = (centers[rng.integers(64, size=queries)] + 0.6 * rng.normal(size=(queries, DIM))).astype(np.float32)
    return vectors, qs


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99))}


def timed(fn: Callable[[int], Any], n: int, warmup: int = 5) -> tuple[dict[str, float], list[Any]]:
    for i in range(warmup):
        fn(i)
    samples, out = [], []
    for i in range(n):
        start = time.perf_counter()
        out.append(fn(i))
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples), out


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact)]))


def rss_mb(pattern: str) -> float:
    """Resident memory of the processes whose command line contains ``pattern`` (the Milvus one)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            if pattern in cmd:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def feast_store(online_store: Any, workdir: Path, vectors: np.ndarray, project: str, store_class: Any = None) -> tuple[Any, float]:
    """A one-view repo on ``online_store`` holding ``vectors``; ``store_class`` defaults to Feast's
    ``FeatureStore`` (ours pass ``MmFeatureStore``, what ``open_store`` gives users)."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RegistryConfig, RepoConfig
    from feast.types import Array, Float32, Int64, String

    config = RepoConfig(project=project, provider="local", registry=RegistryConfig(path=str(workdir / "registry.db")),
                        online_store=online_store, offline_store={"type": "file"}, repo_path=workdir,
                        entity_key_serialization_version=3)
    store = (store_class or FeatureStore)(config=config)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)
    view = FeatureView(name="docs", entities=[item], online=True,
                       schema=[Field(name="item_id", dtype=Int64),
                               Field(name="embedding", dtype=Array(Float32), vector_index=True, vector_length=DIM, vector_search_metric="COSINE"),
                               Field(name="caption", dtype=String)],
                       source=FileSource(path=str(workdir / "unused.parquet"), timestamp_field="event_timestamp"))
    store.apply([item, view])
    now = datetime.now(timezone.utc)
    start = time.perf_counter()
    for chunk in range(0, len(vectors), 5000):
        part = vectors[chunk:chunk + 5000]
        store.write_to_online_store("docs", pd.DataFrame({"item_id": np.arange(chunk, chunk + len(part)), "embedding": list(part),
                                                          "caption": [f"item {i}" for i in range(chunk, chunk + len(part))], "event_timestamp": now}))
    return store, time.perf_counter() - start


def measure_store(name: str, store: Any, vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, build_s: float, ours: bool,
                  rss_pattern: str) -> list[dict[str, Any]]:
    n = len(vectors)
    rows = []
    online, _ = timed(lambda i: store.get_online_features(features=["docs:caption", "docs:embedding"],
                                                          entity_rows=[{"item_id": int(i * 7919 % n)}]), N_QUERIES)
    rows.append({"setup": name, "n": n, "what": "get_online_features, 1 row + embedding", **online})
    docs, found = timed(lambda i: [int(v) for v in store.retrieve_online_documents_v2(
        features=["docs:caption", "docs:embedding"], query=queries[i % len(queries)].tolist(), top_k=10).to_dict()["item_id"]], N_QUERIES)
    rows.append({"setup": name, "n": n, "what": "retrieve_online_documents_v2 top-10", **docs, "recall@10": recall(found, exact)})
    if ours:
        online_store = store._get_provider().online_store
        view = store.get_feature_view("docs")
        fast, hits = timed(lambda i: [int(h["item_id"]) for h in online_store.search_vectors(
            store.config, view, "embedding", queries[i % len(queries)], 10, ["caption"])[0]], N_QUERIES)
        rows.append({"setup": name, "n": n, "what": "search_vectors top-10", **fast, "recall@10": recall(hits, exact)})
        # the same outputs as the document search above: what Feast's API adds, like for like
        same, hits = timed(lambda i: [int(h["item_id"]) for h in online_store.search_vectors(
            store.config, view, "embedding", queries[i % len(queries)], 10, ["caption", "embedding"])[0]], N_QUERIES)
        rows.append({"setup": name, "n": n, "what": "search_vectors top-10 + embeddings", **same, "recall@10": recall(hits, exact)})
    for row in rows:
        row.update({"build_s": round(build_s, 1), "rss_mb": round(rss_mb(rss_pattern), 0)})
    return rows


def numpy_rows(vectors: np.ndarray, queries: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]

    def one(i: int) -> list[int]:
        scores = x @ q[i % len(q)]
        top = np.argpartition(-scores, 10)[:10]
        return top[np.argsort(-scores[top])].tolist()

    lat, found = timed(one, N_QUERIES)
    return [{"setup": "numpy brute force", "n": len(vectors), "what": "top-10 (exact)", **lat, "recall@10": recall(found, exact)}], exact


def stock_store(vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, name: str) -> list[dict[str, Any]]:
    """Stock Feast's MilvusOnlineStore on whatever Milvus Lite this venv has."""
    from feast.infra.online_stores.milvus_online_store.milvus import MilvusOnlineStoreConfig

    workdir = Path(tempfile.mkdtemp(prefix="bench_stock_"))
    store, build = feast_store(MilvusOnlineStoreConfig(path=str(workdir / "stock.db"), embedding_dim=DIM), workdir, vectors, "stock")
    rows = measure_store(name, store, vectors, queries, exact, build, False, "milvus_lite")
    release_lite(str(workdir / "stock.db"))
    return rows


def release_lite(db_path: str) -> None:
    """Stop the Lite server a stock store left running, so it costs the next setups no CPU.

    Lite 2.5 serves each file from a child process; Lite 3.x runs in-process and has none."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(db_path)


def stock_only(n: int) -> list[dict[str, Any]]:
    import milvus_lite

    vectors, queries = data(n)
    _, exact = numpy_rows(vectors, queries)
    return stock_store(vectors, queries, exact, f"stock Feast 0.67, Lite {milvus_lite.__version__}")


def wait_indexed(uri: str, project: str, deadline_s: float = 1800.0) -> float:
    """Flush the project's collections and wait until their vector indexes cover every row.

    Returns the indexed fraction at the end (1.0 unless the deadline passed): a server searches
    unindexed rows by brute force, so a build that has not finished indexing is not HNSW's speed.
    """
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    names = [name for name in client.list_collections() if name.startswith(project)]
    for name in names:
        client.flush(name)
    deadline = time.monotonic() + deadline_s
    while True:
        infos = [client.describe_index(name, index) for name in names for index in client.list_indexes(name)]
        infos = [info for info in infos if str(info.get("metric_type", "")).upper() != "BM25"]
        indexed = sum(int(info.get("indexed_rows", 0)) for info in infos)
        total = sum(int(info.get("total_rows", 0)) for info in infos)
        if indexed >= total or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    client.close()
    return indexed / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--server-uri")
    parser.add_argument("--stock-python", help="python of a venv with stock feast[milvus]==0.67.0")
    parser.add_argument("--stock-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setups", nargs="*", default=["flat", "ivf", "hnsw", "stock-same", "stock"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.jsonl"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.stock_only:
        for n in args.sizes:
            print(json.dumps(stock_only(n)), flush=True)
        return
    from mm_feast.plugin.milvus.store import MmMilvusOnlineStoreConfig, close_connections
    from mm_feast.stores.feature_store import MmFeatureStore

    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        vectors, queries = data(n)
        rows, exact = numpy_rows(vectors, queries)
        ivf_index, ivf_search = ivf_params(n)
        setups = {
            "flat": ("mm-feast, Lite 2.5.1 FLAT", lambda d: MmMilvusOnlineStoreConfig(path=str(d / "flat.db")), "milvus_lite"),
            "ivf": (f"mm-feast, Lite 2.5.1 IVF_FLAT (nlist {ivf_index['nlist']}, nprobe {IVF_NPROBE})", lambda d: MmMilvusOnlineStoreConfig(
                path=str(d / "ivf.db"), index_type="IVF_FLAT", index_params=ivf_index, search_params=ivf_search), "milvus_lite"),
        }
        if args.server_uri:
            setups["hnsw"] = ("mm-feast, server 2.3.5 HNSW (M 16, ef 64)", lambda d: MmMilvusOnlineStoreConfig(
                uri=args.server_uri, index_type="HNSW", search_params={"ef": 64}), "milvus run standalone")
        for key, (name, make, pattern) in setups.items():
            if key not in args.setups:
                continue
            workdir = Path(tempfile.mkdtemp(prefix="bench_scale_"))
            project = f"scale_{key}_{n}"
            store, build = feast_store(make(workdir), workdir, vectors, project, MmFeatureStore)
            indexed = 1.0
            if key == "hnsw":
                started = time.perf_counter()
                indexed = wait_indexed(args.server_uri, project)
                build += time.perf_counter() - started
            measured = measure_store(name, store, vectors, queries, exact, build, True, pattern)
            for row in measured:
                row["indexed"] = round(indexed, 4)
            rows += measured
            if key == "hnsw":
                store.teardown()
            close_connections()
        if "stock-same" in args.setups:
            import milvus_lite

            rows += stock_store(vectors, queries, exact, f"stock Feast 0.67 store, Lite {milvus_lite.__version__} (our venv)")
        if args.stock_python and "stock" in args.setups:
            out = subprocess.run([args.stock_python, "-m", "benchmarks.bench_scale", "--stock-only", "--sizes", str(n)],
                                 capture_output=True, text=True, timeout=7200, cwd=Path(__file__).resolve().parents[1])
            lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
            if out.returncode != 0 or not lines:
                print(f"stock run failed: {out.stderr[-2000:]}", file=sys.stderr)
            for line in lines:
                rows += json.loads(line)
        with open(args.out, "a") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        for row in rows:
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
