"""The code's shape is checked, not hoped for: layers and acyclic packages (import-linter), no
``_private`` name imported across mm-feast modules, Feast's private APIs touched only in
``mm_feast.plugin.compat``, and the old import paths that registries store still resolving."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mm_feast"
COMPAT = PACKAGE / "plugin" / "compat.py"


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.count("KEPT") >= 3


def private_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and (node.module.startswith("mm_feast") or (node.module.startswith("feast") and path != COMPAT)):
                    found.append(f"{path.relative_to(PACKAGE.parent)}: from {node.module} import {alias.name}")
        if isinstance(node, ast.Attribute) and node.attr == "_get_provider" and path != COMPAT:
            found.append(f"{path.relative_to(PACKAGE.parent)}: ._get_provider")
    return found


def test_no_private_name_crosses_a_module_and_feast_privates_stay_in_compat() -> None:
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in private_uses(path)]
    assert found == []


@pytest.mark.parametrize("path", [
    "mm_feast.online_store.MmMilvusOnlineStore", "mm_feast.online_store.MmMilvusOnlineStoreConfig",
    "mm_feast.offline_store.MmFileOfflineStore", "mm_feast.offline_store.MmFileOfflineStoreConfig",
    "mm_feast.sources.MediaSource", "mm_feast.sources.EmbeddingSource", "mm_feast.fusion.FusedEmbeddingSource",
    "mm_feast.plugin.engine.MmLocalComputeEngine", "mm_feast.plugin.engine.MmLocalComputeEngineConfig",
    "mm_feast.views.segment_embedding_view", "mm_feast.ingest.ensure_embeddings", "mm_feast.search.CrossModalSearch",
])
def test_stored_class_paths_still_resolve(path: str) -> None:
    module, name = path.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is not None
