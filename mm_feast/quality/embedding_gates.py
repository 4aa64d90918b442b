"""Per-row statistics of embedding vectors, and the stored reference centroids drift is measured against.

The embedding suite never sees raw vectors: it sees one row of numbers per vector (dimension,
count of non-finite values, L2 norm, spread, duplicate flag, cosine to the reference centroid),
so a single GE validation covers a whole batch and every observed value is readable in a report.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from mm_feast.quality.ge import ROW_ID, quality_dir

logger = logging.getLogger(__name__)

#: Columns that need a reference centroid; their expectations are skipped until one exists.
REFERENCE_COLUMNS = ("cos_to_reference", "cos_drop")
_DUPLICATE_DECIMALS = 6


@dataclass
class Reference:
    """Centroid of the vectors first admitted for one (source or view, model version)."""

    name: str
    model_version: str
    dim: int
    n: int
    mean_cos: float
    centroid: list[float]
    run_id: str
    created_at: str

    @property
    def unit(self) -> np.ndarray:
        return np.asarray(self.centroid, dtype=np.float64)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "_"


def reference_path(repo_path: Optional[Path], name: str, model_version: str) -> Optional[Path]:
    base = quality_dir(repo_path)
    return base / "reference" / _safe(name) / f"{_safe(model_version)}.json" if base is not None else None


def load_reference(repo_path: Optional[Path], name: str, model_version: str) -> Optional[Reference]:
    path = reference_path(repo_path, name, model_version)
    if path is None or not path.is_file():
        return None
    return Reference(**json.loads(path.read_text(encoding="utf-8")))


def build_reference(name: str, model_version: str, vectors: np.ndarray, run_id: str) -> Reference:
    """Centroid (unit length) of unit-normalised ``vectors`` and their mean cosine to it."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    centroid = unit.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    return Reference(
        name=name, model_version=model_version, dim=int(vectors.shape[1]), n=int(len(vectors)),
        mean_cos=float((unit @ centroid).mean()), centroid=centroid.astype(float).tolist(),
        run_id=run_id, created_at=datetime.now(timezone.utc).isoformat(),
    )


def save_reference(repo_path: Optional[Path], reference: Reference) -> Optional[Path]:
    """Written once per (name, model version): later batches are compared to it, never merged in."""
    path = reference_path(repo_path, reference.name, reference.model_version)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(reference)), encoding="utf-8")
    tmp.replace(path)
    logger.info("stored drift reference for %s @ %s (%d vectors, mean cosine %.3f) at %s",
                reference.name, reference.model_version, reference.n, reference.mean_cos, path)
    return path


@dataclass
class EmbeddingStats:
    """The frame the embedding suite validates, and which of its columns could not be computed."""

    frame: pd.DataFrame
    unavailable: list[str]
    comparable: np.ndarray  # bool per row: finite, expected size, non-zero


def embedding_stats(
    row_ids: Sequence[str],
    vectors: Sequence[Any],
    expected_dim: int,
    model_versions: Optional[Sequence[str]] = None,
    references: Optional[dict[str, Reference]] = None,
) -> EmbeddingStats:
    """One row of statistics per vector; vectors may be ragged or hold NaN (that is the point)."""
    n = len(vectors)
    arrays = [np.asarray(v if v is not None else [], dtype=np.float64).ravel() for v in vectors]
    dim = np.array([a.size for a in arrays], dtype=np.int64)
    nonfinite = np.array([int((~np.isfinite(a)).sum()) for a in arrays], dtype=np.int64)
    finite = nonfinite == 0
    norm = np.array([float(np.linalg.norm(a)) if ok and a.size else np.nan for a, ok in zip(arrays, finite)])
    spread = np.array([float(a.std()) if ok and a.size else np.nan for a, ok in zip(arrays, finite)])
    comparable = finite & (dim == expected_dim) & (np.nan_to_num(norm) > 0)
    duplicate = np.full(n, np.nan)
    cos = np.full(n, np.nan)
    drop = np.full(n, np.nan)
    unavailable: list[str] = []
    idx = np.flatnonzero(comparable)
    if idx.size:
        unit = np.stack([arrays[i] for i in idx]) / norm[idx, None]
        _, first, inverse = np.unique(np.round(unit, _DUPLICATE_DECIMALS), axis=0, return_index=True, return_inverse=True)
        duplicate[idx] = (first[inverse.ravel()] != np.arange(idx.size)).astype(float)
        versions = list(model_versions) if model_versions is not None else [""] * n
        for pos, i in enumerate(idx):
            ref = (references or {}).get(versions[i])
            if ref is not None and ref.dim == expected_dim:
                cos[i] = float(unit[pos] @ ref.unit)
                drop[i] = ref.mean_cos - cos[i]
    else:
        unavailable += ["duplicate"]
    if np.isnan(cos).all():
        unavailable += list(REFERENCE_COLUMNS)
    frame = pd.DataFrame(
        {ROW_ID: list(row_ids), "dim": dim, "nonfinite": nonfinite, "norm": norm, "value_std": spread,
         "duplicate": duplicate, "cos_to_reference": cos, "cos_drop": drop}
    )
    return EmbeddingStats(frame=frame, unavailable=unavailable, comparable=comparable)
