"""A Milvus server crash in the middle of `feast materialize`, then a restart and a rerun: the online
store ends up holding exactly the rows the offline store holds, none twice, none missing.

The test starts its own `milvus-server` (never the session's or another test's). Materialize runs
with the writer's fault seam armed: it pauses right after a known number of acknowledged upserts,
the test SIGKILLs the inner `milvus` process (DESIGN: SIGKILL simulates a crash, SIGTERM lingers)
and lets the writer go on against the dead server. No poll races the writer. The server is then
restarted on the same data directory and materialize rerun: writes are upserts keyed by the
entity key (segment id = item id + locator position), so a rerun replaces what the crashed run wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore
from pymilvus import MilvusClient

from feast_repo import wait_for_pause
from milvus_server import HOST, MilvusServerProcess, free_port, start_milvus_server
from mm_feast.core.faults import PAUSE_AFTER_UPSERTS_ENV
from mm_feast.cli.demo import feast_cli
from mm_feast.stores.quarantine import entries

pytestmark = [pytest.mark.milvus_server, pytest.mark.slow]
logger = logging.getLogger(__name__)

PROJECT = "fault_tolerance"
DOCS, PARAGRAPHS = 60, 5
VIEWS = {"blocks": DOCS * PARAGRAPHS, "docs": DOCS}  # view -> rows it must end up with
PAUSE_AFTER = 40  # acknowledged upserts (one row each) before the crash: well inside the first view
PAUSE_DEADLINE_S = 600  # ingest (model load, encode) comes before the first write
WRITER_EXIT_DEADLINE_S = 300  # the writer's own write_timeout_s (60 s here) bounds its retries


def _isolated_etcd(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Milvus 2.3's embedded etcd listens on fixed ports 2379/2380, so a second server on the same
    machine (CI's, another test's) would collide. Milvus reads ETCD_* environment variables over
    its YAML, and the wrapper passes its environment on: give this server its own etcd ports."""
    client, peer = free_port(), free_port()
    config = data_dir / "embed_etcd.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(textwrap.dedent(f"""\
        name: default
        data-dir: {data_dir / 'etcd'}
        listen-client-urls: http://{HOST}:{client}
        advertise-client-urls: http://{HOST}:{client}
        listen-peer-urls: http://{HOST}:{peer}
        initial-advertise-peer-urls: http://{HOST}:{peer}
        initial-cluster: default=http://{HOST}:{peer}
        """))
    monkeypatch.setenv("ETCD_CONFIG_PATH", str(config))
    monkeypatch.setenv("ETCD_ENDPOINTS", f"{HOST}:{client}")


def _inner_milvus(server: MilvusServerProcess) -> int:
    """Pid of the `milvus run standalone` child of our own wrapper process."""
    for pid in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split():
        if Path(f"/proc/{pid}/comm").read_text().strip() == "milvus":
            return int(pid)
    raise RuntimeError(f"milvus-server {server.proc.pid} has no milvus child")


def _write_repo(repo: Path, uri: str) -> None:
    docs = repo / "docs"
    docs.mkdir(parents=True)
    colours, shapes = ["red", "green", "blue", "yellow", "purple", "orange"], ["circle", "square", "triangle", "cross"]
    for d in range(DOCS):
        paragraphs = [f"Note {d}.{p}: a {colours[(d + p) % 6]} {shapes[(d * p) % 4]} drawn {p + 1} times." for p in range(PARAGRAPHS)]
        (docs / f"doc{d:02d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))  # refused by the media gate
    (repo / "definitions.py").write_text(textwrap.dedent("""\
        from mm_feast.sources import MediaSource
        from mm_feast.plugin.views import item, item_embedding_view, segment, segment_embedding_view

        notes = MediaSource(name="notes", root="docs")
        blocks = segment_embedding_view("blocks", notes, "text", "sentence-transformers/all-MiniLM-L6-v2")
        docs = item_embedding_view("docs", blocks)
        """))
    _point_at(repo, uri)


def _point_at(repo: Path, uri: str) -> None:
    # write_batch_size 1: one upsert per row, so the crash lands while rows are being written
    (repo / "feature_store.yaml").write_text(
        f"project: {PROJECT}\nprovider: local\nregistry: data/registry.db\n"
        f"online_store:\n  type: mm_feast.online_store.MmMilvusOnlineStore\n  uri: {uri}\n  write_batch_size: 1\n  write_timeout_s: 60\n"
        "offline_store:\n  type: mm_feast.offline_store.MmFileOfflineStore\nbatch_engine:\n  type: mm_feast.plugin.engine.MmLocalComputeEngine\nentity_key_serialization_version: 3\n"
    )


def _counts(client: MilvusClient) -> dict[str, int]:
    out = {}
    for view in VIEWS:
        name = f"{PROJECT}_{view}"
        if client.has_collection(name):
            [row] = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
            out[view] = int(row["count(*)"])
    return out


def _wait_gone(pid: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        if time.monotonic() > deadline:
            raise TimeoutError(f"milvus (pid {pid}) still alive {timeout_s} s after SIGKILL")
        time.sleep(0.05)


def _materialize_cmd(repo: Path, start: str, end: str) -> list[str]:
    return [str(Path(sys.executable).with_name("feast")), "materialize", start, end]


@pytest.fixture()
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if shutil.which("milvus-server") is None:
        pytest.skip("needs the PyPI package `milvus` (milvus-server) for a server of its own")
    started: list[MilvusServerProcess] = []

    def start() -> MilvusServerProcess:
        server = start_milvus_server(tmp_path / "milvus", timeout_s=240)
        started.append(server)
        return server

    _isolated_etcd(tmp_path / "milvus", monkeypatch)
    yield start
    for server in started:
        server.stop()


def test_milvus_killed_mid_materialize_then_rerun_holds_exactly_the_expected_rows(tmp_path: Path, servers):
    repo = tmp_path / "repo"
    server = servers()
    _write_repo(repo, server.uri)
    feast_cli(repo, "apply")
    start = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")

    # 1. materialize, paused by the writer's fault seam right after its PAUSE_AFTER-th acknowledged
    #    upsert (one row each), so the crash lands at a known point while writes are in flight
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    env = {**os.environ, PAUSE_AFTER_UPSERTS_ENV: f"{PAUSE_AFTER}:{pause_dir}"}
    log_path = tmp_path / "materialize-1.log"
    with open(log_path, "w") as log:
        run = subprocess.Popen(_materialize_cmd(repo, start, end), cwd=repo, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        acknowledged = wait_for_pause(pause_dir, run, log_path, f"its {PAUSE_AFTER}th upsert", PAUSE_DEADLINE_S)
        inner = _inner_milvus(server)
        os.kill(inner, signal.SIGKILL)
        _wait_gone(inner)
        (pause_dir / "resume").touch()  # the writer goes on, now against a dead server
        code = run.wait(timeout=WRITER_EXIT_DEADLINE_S)
    except subprocess.TimeoutExpired:  # a client stuck retrying is killed too: still a crashed run
        run.kill()
        code = run.wait(timeout=30)
    finally:
        if run.poll() is None:  # the test failed before the writer ended: never leave it running
            run.kill()
            run.wait(timeout=30)
    logger.info("milvus killed after %s; materialize exited %s", acknowledged, code)
    server.stop()

    # 2. restart the server on the same data (its own etcd again) and rerun materialize
    restarted = servers()
    if code == 0:  # it must then have written everything it acknowledged, durably
        durable = MilvusClient(uri=restarted.uri, timeout=30)
        assert sum(_counts(durable).values()) >= acknowledged["rows"], (acknowledged, _counts(durable))
        durable.close()
    _point_at(repo, restarted.uri)
    feast_cli(repo, "materialize", start, end)

    # 3. exactly the expected rows: every offline row online once, nothing else
    store = FeatureStore(repo_path=str(repo))
    checker = MilvusClient(uri=restarted.uri, timeout=30)
    assert _counts(checker) == VIEWS  # count(*) counts every stored row: a duplicate would show
    checker.close()
    for view, key in (("blocks", "segment_id"), ("docs", "item_id")):
        offline = pd.read_parquet(repo / "data" / "embeddings" / f"{view}_source.parquet")
        assert len(offline) == VIEWS[view] and offline[key].is_unique
        online = store.get_online_features(
            features=[f"{view}:embedding", f"{view}:sha256"], entity_rows=[{key: k} for k in offline[key]]
        ).to_dict()
        assert np.allclose(np.stack(online["embedding"]), np.stack(offline.embedding), atol=1e-6)
        assert online["sha256"] == list(offline.sha256)
    # the bad file never reached either store, and is on record
    assert [e.item_id for e in entries(repo)] == ["latin1"]
    runs = pd.read_json(repo / "data" / "runs" / "blocks_source.jsonl", lines=True)
    assert (runs.seen == runs.ingested + runs.unchanged + runs.quarantined).all() and runs.quarantined.eq(1).all()
