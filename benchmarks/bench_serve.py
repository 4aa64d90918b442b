"""`mm-feast serve` end to end on the demo repo (Milvus Lite): per-request latency of each search
mode over HTTP, then a bounded load test (asyncio + httpx, loopback only).

Baselines in the same run: `GET /health` (the HTTP floor: no model, no Milvus) and a search of
one view against a search of every view (concurrent views should cost far less than the sum).
Repeated queries hit the service's bounded caches (query vector, content-filter verdict); the
"every query new" row pays the content filters and the encoder on each request.
With ``--scale N`` a copy of the repo gets N more rows in image_embeddings' online collection
(clustered 512-d vectors, the demo rows' other columns), and the image_embeddings rows are
measured again against it, beside the demo-sized rows of the same run. ``--scale-index IVF_FLAT``
rebuilds that collection with IVF_FLAT first (nlist 4·sqrt(rows), nprobe 32, as bench_scale), so
the padded view is measured on the index a collection of that size should use. The padded copy
is kept and its path printed: ``--padded DIR`` measures that copy again instead of padding anew
(1M rows take 13-23 minutes to write).
Run:
    python -m benchmarks.bench_serve [--repo DIR] [--requests 200] [--clients 50] [--seconds 60] \
        [--scale 100000 [--scale-index IVF_FLAT] [--padded DIR]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.bench_scale import data, ivf_params
from benchmarks.common import LATENCY_HEADER, Latency, measure

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["a red circle", "a blue square", "an orange triangle", "a high tone", "a green cross", "a purple circle"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo_repo(repo: Path | None) -> Path:
    if repo is not None:
        return repo
    repo = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    subprocess.run([str(Path(sys.executable).with_name("mm-feast")), "demo", "--repo", str(repo)], check=True,
                   stdout=subprocess.DEVNULL, timeout=1800)
    return repo


def _start(repo: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mm-feast")), "serve", "--repo", str(repo),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mm-feast serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError("mm-feast serve not ready in 300 s")


PAD_VIEW = "image_embeddings"


def _pad(repo: Path, rows: int, index_type: str = "") -> Path:
    """A copy of ``repo`` whose PAD_VIEW serves ``rows`` more rows, written through Feast.

    With ``index_type``, the copy's feature_store.yaml names that index for PAD_VIEW and the
    collection is rebuilt from the view's source rows (the served demo rows) before the padding.
    """
    import pandas as pd
    import yaml

    from mm_feast.lineage import open_store
    from mm_feast.plugin.milvus.store import close_connections

    padded = Path(tempfile.mkdtemp(prefix="bench-serve-scale-")) / "repo"
    shutil.copytree(repo, padded)
    template = pd.read_parquet(padded / "data" / "embeddings" / f"{PAD_VIEW}_source.parquet")
    if index_type:
        config_path = padded / "feature_store.yaml"
        config = yaml.safe_load(config_path.read_text())
        index_params, search_params = ivf_params(rows + len(template))
        config["online_store"]["vector_indexes"] = {PAD_VIEW: {
            "index_type": index_type, "index_params": index_params, "search_params": search_params}}
        config_path.write_text(yaml.safe_dump(config))
    store = open_store(padded)
    view = store.get_feature_view(PAD_VIEW)
    if index_type:  # the copied collection keeps its old index: build it again, demo rows first
        store._get_provider().online_store.teardown(store.config, [view], [])
        store.write_to_online_store(PAD_VIEW, template)
    join_key = view.entity_columns[0].name
    vectors, _ = data(rows, queries=0)  # bench_scale's clustered 512-d vectors
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for start in range(0, rows, 10_000):
        n = min(10_000, rows - start)
        part = template.iloc[np.arange(n) % len(template)].reset_index(drop=True)
        part[join_key] = [f"pad-{i}" for i in range(start, start + n)]
        part["embedding"] = list(vectors[start : start + n])
        store.write_to_online_store(PAD_VIEW, part)
    close_connections()
    return padded


def _post(client: httpx.Client, body: dict) -> None:
    answer = client.post("/search", json=body)
    answer.raise_for_status()


async def _load(url: str, clients: int, seconds: float) -> tuple[Latency, int, int]:
    """``clients`` concurrent loops of text searches for ``seconds``; every request counted."""
    samples: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        async def one(n: int) -> None:
            nonlocal errors
            i = n
            while time.monotonic() < stop:
                body = {"query": QUERIES[i % len(QUERIES)], "views": ["image_embeddings"], "top_k": 10}
                start = time.perf_counter()
                try:
                    answer = await client.post("/search", json=body)
                    if answer.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                samples.append((time.perf_counter() - start) * 1000.0)
                i += clients
        began = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(clients)))
        elapsed = time.monotonic() - began
    latency = Latency(f"load: {clients} clients x {seconds:.0f} s, image_embeddings top-10", np.asarray(samples))
    return latency, errors, int(len(samples) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, help="a materialized demo repo (default: build one)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scale", type=int, default=0, help=f"also measure {PAD_VIEW} with this many more rows")
    parser.add_argument("--scale-index", default="", help="rebuild the padded view with this index type (IVF_FLAT)")
    parser.add_argument("--padded", type=Path, help="a copy an earlier --scale run padded (its path is printed)")
    args = parser.parse_args()
    if args.padded and not args.scale:
        parser.error("--padded needs --scale: the number of rows that copy was padded with")
    repo = _demo_repo(args.repo)
    port = _free_port()
    proc = _start(repo, port)
    url = f"http://127.0.0.1:{port}"
    try:
        rows = []
        with httpx.Client(base_url=url, timeout=60.0) as client:
            def search(body: dict):
                return lambda i: _post(client, {**body, "query": QUERIES[i % len(QUERIES)]})

            rows.append(measure("GET /health (HTTP floor)", lambda i: client.get("/health").raise_for_status(), args.requests))
            rows.append(measure("vector, image_embeddings", search({"views": ["image_embeddings"], "top_k": 10}), args.requests))
            rows.append(measure("vector, image_embeddings, every query new (screen + encode)", lambda i: _post(
                client, {"query": f"{QUERIES[i % len(QUERIES)]} number {i}", "views": ["image_embeddings"], "top_k": 10}), args.requests))
            rows.append(measure("keyword, text_block_minilm", search({"views": ["text_block_minilm"], "mode": "keyword", "top_k": 10}), args.requests))
            rows.append(measure("hybrid, text_block_minilm", search({"views": ["text_block_minilm"], "mode": "hybrid", "top_k": 10}), args.requests))
            rows.append(measure("vector, every view (8, 3 spaces)", search({"top_k": 10}), args.requests))
            rows.append(measure("vector + 2 joined features", search({"views": ["video_frame_embeddings"], "top_k": 10,
                                                                       "features": ["video_embeddings:caption", "video_embeddings:n_segments"]}), args.requests))
        load, errors, qps = asyncio.run(_load(url, args.clients, args.seconds))
        print(f"\n## HTTP service (`python benchmarks/bench_serve.py`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)\n")
        print(LATENCY_HEADER)
        floor = rows[0].p50
        for row in rows:
            print(row.row(f"{row.p50 / floor:.1f}x the HTTP floor"))
        print(load.row(f"{qps} QPS sustained, {errors} errors of {len(load.samples_ms)} requests"))
    finally:
        _stop(proc)
    if args.scale:
        _print_scaled(repo, args.scale, args.requests, rows[1:3], args.scale_index, args.padded)


def _print_scaled(repo: Path, extra_rows: int, requests: int, demo_rows: list[Latency], index_type: str = "",
                  padded: Path | None = None) -> None:
    """The image_embeddings rows again, with ``extra_rows`` more rows served, beside the demo's."""
    started = time.perf_counter()
    made = padded is None
    padded = padded or _pad(repo, extra_rows, index_type)
    pad_s = time.perf_counter() - started
    port = _free_port()
    proc = _start(padded, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
            scaled = [
                measure(f"vector, image_embeddings, +{extra_rows:,} rows", lambda i: _post(
                    client, {"query": QUERIES[i % len(QUERIES)], "views": [PAD_VIEW], "top_k": 10}), requests),
                measure(f"vector, image_embeddings, +{extra_rows:,} rows, every query new (screen + encode)", lambda i: _post(
                    client, {"query": f"{QUERIES[i % len(QUERIES)]} number {i}", "views": [PAD_VIEW], "top_k": 10}), requests),
            ]
    finally:
        _stop(proc)
    index = f", {index_type}" if index_type else ", the repo's own index"
    written = f"written through Feast in {pad_s:.0f} s" if made else "padded by an earlier run"
    print(f"\n{extra_rows:,} rows {written}{index}, in {padded}\n")
    print(LATENCY_HEADER)
    for demo, row in zip(demo_rows, scaled):
        print(demo.row("demo size"))
        print(row.row(f"{row.p50 / demo.p50:.2f}x the demo size's p50"))


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
