"""`get_online_features` for one entity with its embedding: mm-feast's store against stock Feast
0.67's Milvus store on the same Milvus Lite, the same rows, in one process, in interleaved blocks of reads.

bench_scale measures each setup minutes apart, so machine drift on 2 cores (±0.6 ms) swamps a
1.2x goal. Here each round runs the four paths in a shuffled order, BLOCK random reads each: our
`get_online_features`, stock's, and the bare `MilvusClient.query` under each (the floor each
store's Python adds to). Blocks, not one read per path in turn: alternating two Lite processes
read by read doubled every path's latency here (each server sleeps while the other answers),
which a serving process reading one store never sees. Writes go through Feast's
`write_to_online_store` (bench_scale's).

    python -m benchmarks.bench_point_read [--sizes 10000 50000] [--reads 400]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.bench_scale import DIM, data, feast_store, release_lite
from benchmarks.common import LATENCY_HEADER, Latency

BLOCK = 25  # reads per path per round


def entity_pk(item_id: int) -> str:
    """The primary key both stores give an ``item_id`` entity: Feast's serialized key, in hex."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["item_id"], entity_values=[Value(int64_val=item_id)])
    return serialize_entity_key(key, entity_key_serialization_version=3).hex()


def bare_query(db_path: Path) -> Callable[[int], Any]:
    """One point read by primary key on the only collection of a Lite file, as both stores ask it."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(db_path))  # in-process: the store's own Lite server answers
    (name,) = client.list_collections()
    fields = client.describe_collection(name)["fields"]
    pk = next(f["name"] for f in fields if f.get("is_primary"))
    output = [f["name"] for f in fields if f["name"] in (pk, "caption", "embedding", "event_ts")]
    return lambda i: client.query(name, filter=f"{pk} in ['{entity_pk(i)}']", output_fields=output)


def one_size(n: int, reads: int) -> list[Latency]:
    from feast.infra.online_stores.milvus_online_store.milvus import MilvusOnlineStoreConfig

    from mm_feast.plugin.milvus.store import MmMilvusOnlineStoreConfig, close_connections
    from mm_feast.stores.feature_store import MmFeatureStore

    vectors, _ = data(n, queries=1)
    ours_dir, stock_dir = Path(tempfile.mkdtemp(prefix="bench_pr_ours_")), Path(tempfile.mkdtemp(prefix="bench_pr_stock_"))
    ours, ours_build = feast_store(MmMilvusOnlineStoreConfig(path=str(ours_dir / "ours.db")), ours_dir, vectors, "ours", MmFeatureStore)
    stock, stock_build = feast_store(MilvusOnlineStoreConfig(path=str(stock_dir / "stock.db"), embedding_dim=DIM), stock_dir, vectors, "stock")
    print(f"{n:,} rows: built in {ours_build:.0f} s (ours) and {stock_build:.0f} s (stock)", flush=True)
    features = ["docs:caption", "docs:embedding"]
    paths: dict[str, Callable[[int], Any]] = {
        "mm-feast get_online_features": lambda i: ours.get_online_features(features=features, entity_rows=[{"item_id": i}]),
        "stock Feast get_online_features": lambda i: stock.get_online_features(features=features, entity_rows=[{"item_id": i}]),
        "bare query, mm-feast's collection": bare_query(ours_dir / "ours.db"),
        "bare query, stock's collection": bare_query(stock_dir / "stock.db"),
    }
    ours_row = ours.get_online_features(features=features, entity_rows=[{"item_id": 7}]).to_dict()
    stock_row = stock.get_online_features(features=features, entity_rows=[{"item_id": 7}]).to_dict()
    if ours_row["caption"] != stock_row["caption"] or not np.allclose(ours_row["embedding"][0], stock_row["embedding"][0]):
        raise RuntimeError("the two stores answer differently for item 7")
    samples: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    rng = np.random.default_rng(1)
    for round_ in range(reads // BLOCK + 1):  # the first round warms every path up and is not kept
        rng.shuffle(order)
        for name in order:
            for item in rng.integers(n, size=BLOCK):
                start = time.perf_counter()
                paths[name](int(item))
                if round_:
                    samples[name].append((time.perf_counter() - start) * 1000.0)
    close_connections()
    release_lite(str(stock_dir / "stock.db"))
    return [Latency(f"{n:,}: {name}", np.asarray(values)) for name, values in samples.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--reads", type=int, default=400)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import milvus_lite

    results = [one_size(n, args.reads) for n in args.sizes]
    print(f"\n## get_online_features against stock on the same Lite {milvus_lite.__version__} "
          f"(`python -m benchmarks.bench_point_read`, {time.strftime('%Y-%m-%d')})\n")
    print(LATENCY_HEADER)
    for ours, stock, ours_bare, stock_bare in results:
        print(ours.row(f"{ours.p50 / stock.p50:.2f}x stock's p50, {ours.p99 / stock.p99:.2f}x its p99"))
        print(stock.row("the baseline"))
        print(ours_bare.row(f"{ours_bare.p50 / stock_bare.p50:.2f}x stock's collection"))
        print(stock_bare.row(f"Feast and the store add {stock.p50 - stock_bare.p50:.2f} ms (stock), "
                             f"{ours.p50 - ours_bare.p50:.2f} ms (ours)"))


if __name__ == "__main__":
    main()
