"""What one top-10 search costs on Milvus Lite 2.5.1 at scale, taken apart on a bare client.

Why: over HTTP on 2026-12-04, 1M rows seemed to add about 19 ms to a repeated query against the
demo size (docs/benchmarks.md). This separates what Lite itself costs from what the service adds. The
collection has the shape of an embedding view (512-d clustered vectors on IVF_FLAT with
bench_scale's nlist/nprobe, a varchar key, ``model_version`` and ``caption``), written in
upserts of 1,000 rows with a flush every 5,000, as our store writes. Paths, in interleaved blocks:
- ``no filter, key only``: the baseline;
- ``+ output fields``: the hits' caption and model_version, as a search returns them;
- ``+ output fields + model_version == v``: the condition every mm-feast search carries (it matches every row);
- the same two again after an INVERTED index on model_version.

    python -m benchmarks.bench_lite_search [--rows 100000 1000000] [--searches 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_scale import data, ivf_params
from benchmarks.common import LATENCY_HEADER, Latency, measure

DIM = 512
UPSERT_ROWS = 1000
FLUSH_ROWS = 5000
VERSION = "0123456789ab"
MATCH_ALL = f'model_version == "{VERSION}"'


def build(root: Path, rows: int) -> tuple["object", np.ndarray, float]:
    """The view-shaped collection of ``rows`` rows, loaded; returns it, the queries and its build time."""
    from pymilvus import DataType, MilvusClient

    vectors, queries = data(rows)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index_params, _ = ivf_params(rows)
    client = MilvusClient(str(root / "lite.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("model_version", DataType.VARCHAR, max_length=64)
    schema.add_field("caption", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="IVF_FLAT", metric_type="COSINE", params=index_params)
    client.create_collection("view", schema=schema, index_params=index)
    started = time.perf_counter()
    for start in range(0, rows, UPSERT_ROWS):
        stop = min(rows, start + UPSERT_ROWS)
        client.upsert("view", [{"pk": f"{n:032x}", "embedding": vectors[n].tolist(), "model_version": VERSION,
                                "caption": f"item {n}"} for n in range(start, stop)])
        if stop % FLUSH_ROWS == 0:
            client.flush("view")
    client.flush("view")
    client.load_collection("view")
    return client, queries, time.perf_counter() - started


def timings(client, queries: np.ndarray, rows: int, searches: int, label: str) -> list[Latency]:
    """Each path in two interleaved blocks; the faster block of each (the other absorbed noise)."""
    _, search_params = ivf_params(rows)
    params = {"metric_type": "COSINE", "params": search_params}
    paths = {
        "no filter, key only": ("", []),
        "+ output fields": ("", ["caption", "model_version"]),
        "+ output fields + model_version == v": (MATCH_ALL, ["caption", "model_version"]),
    }
    blocks: dict[str, list[Latency]] = {}
    for _ in range(2):
        for name, (expr, output) in paths.items():
            def search(i: int, expr: str = expr, output: list[str] = output) -> None:
                client.search("view", [queries[i % len(queries)].tolist()], anns_field="embedding", limit=10,
                              search_params=params, filter=expr, output_fields=output, consistency_level="Bounded")

            blocks.setdefault(name, []).append(measure(f"{rows:,} rows{label}, {name}", search, searches, warmup=20))
    return [min(found, key=lambda latency: latency.p50) for found in blocks.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--searches", type=int, default=300)
    args = parser.parse_args()
    print(LATENCY_HEADER)
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="bench-lite-search-") as tmp:
            client, queries, build_s = build(Path(tmp), rows)
            plain = timings(client, queries, rows, args.searches, "")
            started = time.perf_counter()
            client.release_collection("view")
            index = client.prepare_index_params()
            index.add_index("model_version", index_type="INVERTED")
            client.create_index("view", index)
            client.load_collection("view")
            indexed_s = time.perf_counter() - started
            indexed = timings(client, queries, rows, args.searches, ", INVERTED on model_version")
            client.close()
        baseline = plain[0]
        for latency in plain:
            print(latency.row(f"{latency.p50 / baseline.p50:.2f}x key only; build {build_s:.0f} s"))
        for latency in indexed[1:]:
            print(latency.row(f"{latency.p50 / baseline.p50:.2f}x key only; index + reload {indexed_s:.0f} s"))


if __name__ == "__main__":
    main()
