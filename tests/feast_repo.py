"""Helpers for tests that drive a Feast repo through the real `feast` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest
from feast import FeatureStore

from mm_feast.lineage import LineageDB
from mm_feast.plugin.compat import entity_key_hex
from mm_feast.plugin.milvus.store import close_connections

FEAST = Path(sys.executable).with_name("feast")


def write_feature_store_yaml(repo: Path, project: str, show_progress: Optional[bool] = None) -> None:
    """The demo's store layout: SQLite registry, Milvus Lite and parquet under data/, mm-feast's engine."""
    lines = [
        f"project: {project}",
        "provider: local",
        "registry: data/registry.db",
        "online_store:",
        "  type: mm_feast.online_store.MmMilvusOnlineStore",
        "  path: data/online_store.db",
        "offline_store:",
        "  type: mm_feast.offline_store.MmFileOfflineStore",
        "batch_engine:",
        "  type: mm_feast.plugin.engine.MmLocalComputeEngine",
        *([f"  show_progress: {str(show_progress).lower()}"] if show_progress is not None else []),
        "entity_key_serialization_version: 3",
    ]
    (repo / "feature_store.yaml").write_text("\n".join(lines) + "\n")


def feast(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `feast ARGS` in ``repo``; with ``check``, a failure shows its output."""
    close_connections()  # Milvus Lite: one process per database file
    result = subprocess.run([str(FEAST), *args], cwd=repo, capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, f"feast {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def offline(repo: Path, view: str) -> pd.DataFrame:
    return pd.read_parquet(repo / "data" / "embeddings" / f"{view}_source.parquet")


def assert_stores_match_disk(repo: Path, view: str, expected_texts: dict[str, list[str]]) -> None:
    """Offline rows, online rows and current lineage are exactly the blocks of the files on disk."""
    rows = offline(repo, view)
    assert {item: sorted(group["text"]) for item, group in rows.groupby("item_id")} == {
        k: sorted(v) for k, v in expected_texts.items()
    }
    store = FeatureStore(repo_path=str(repo))
    try:
        fv = store.get_feature_view(view)
        online = store._get_provider().online_store.served_rows(store.config, fv)  # pk -> lineage_id
        want = {entity_key_hex("segment_id", k, 3): lid for k, lid in zip(rows["segment_id"], rows["lineage_id"])}
        assert online == want, "the online store must hold exactly the current rows, no stale or orphaned one"
        served = store.get_online_features(
            features=[f"{view}:text", f"{view}:sha256"], entity_rows=[{"segment_id": k} for k in rows["segment_id"]]
        ).to_dict()
        assert served["text"] == list(rows["text"]) and served["sha256"] == list(rows["sha256"])
        live = {(r.entity_key, r.lineage_id) for r in LineageDB.for_repo(repo).by_view(view) if r.deleted_at is None}
        assert live == set(zip(rows["segment_id"], rows["lineage_id"])), "lineage marks exactly the served rows current"
    finally:
        close_connections()


def wait_for_pause(pause_dir: Path, run: subprocess.Popen, log: Path, what: str, deadline_s: float = 600) -> dict:
    """What a process armed with a fault seam (mm_feast.core.faults) reported when it paused at
    ``what``; fails the test, with the process' log, if it exits first or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    marker = pause_dir / "paused"
    while not marker.exists():
        if run.poll() is not None:
            pytest.fail(f"the process exited {run.returncode} before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the process did not reach {what} within {deadline_s:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return json.loads(marker.read_text())
