"""Helpers for tests that drive a Feast repo through the real `feast` CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

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
