"""Milvus Lite 2.5.1's primary-key read (`query(ids=[pk])`) against row count and sealed segments.

Why: `get_online_features` at 1M on Lite took 72 ms. This separates the two suspects on a bare
client and a small schema (varchar key, 8-d vector, one int64): rows written with one flush at
the end against a flush after every ``--flush-every`` rows (one sealed segment each), and an
optional index on the key (INVERTED or Trie). The baseline is the one-flush run at the same size.

    python -m benchmarks.bench_lite_keys [--rows 100000 1000000] [--flush-every 5000] \
        [--key-index INVERTED] [--reads 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import LATENCY_HEADER, measure

DIM = 8
UPSERT_ROWS = 1000


def build(root: Path, rows: int, flush_every: int, key_index: str) -> tuple["object", float]:
    """A Lite collection of ``rows`` rows, flushed every ``flush_every`` rows (0: once, at the end)."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(root / "lite.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    if key_index:
        index.add_index("pk", index_type=key_index)
    client.create_collection("keys", schema=schema, index_params=index)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, rows, UPSERT_ROWS):
        stop = min(rows, start + UPSERT_ROWS)
        vectors = rng.random((stop - start, DIM), dtype=np.float32)
        client.upsert("keys", [{"pk": f"{n:032x}", "vector": v.tolist(), "n": n} for n, v in zip(range(start, stop), vectors)])
        if flush_every and stop % flush_every == 0:
            client.flush("keys")
    client.flush("keys")
    client.load_collection("keys")
    return client, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--flush-every", type=int, default=5000)
    parser.add_argument("--key-index", default="", help="INVERTED or Trie on the key (default: none)")
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    print(LATENCY_HEADER)
    for rows in args.rows:
        baseline = None
        for flush_every in (0, args.flush_every):
            with tempfile.TemporaryDirectory(prefix="bench-lite-keys-") as tmp:
                client, build_s = build(Path(tmp), rows, flush_every, args.key_index)
                keys = np.random.default_rng(1).integers(0, rows, size=args.reads)

                def read(i: int) -> None:
                    n = int(keys[i])
                    hits = client.query("keys", ids=[f"{n:032x}"], output_fields=["n"], consistency_level="Bounded")
                    if not hits or hits[0]["n"] != n:
                        raise AssertionError(f"key {n}: got {hits}")

                segments = "1 flush" if not flush_every else f"flush every {flush_every:,} ({rows // flush_every} segments)"
                latency = measure(f"{rows:,} rows, {segments}", read, args.reads, warmup=20)
                client.close()
            baseline = baseline or latency
            print(latency.row(f"{latency.p50 / baseline.p50:.2f}x one flush; build {build_s:.0f} s"
                              + (f"; key index {args.key_index}" if args.key_index else "")))


if __name__ == "__main__":
    main()
