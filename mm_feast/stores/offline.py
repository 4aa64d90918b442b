"""The offline parquet files mm-feast writes: embedding rows per source, quarantine records and
the run log. Every rewrite goes through a temp file and a rename, so a crash leaves the previous
file whole."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pandas as pd

from mm_feast.core.records import RunSummary
from mm_feast.core.schema import ALL_COLUMNS, absent
from mm_feast.sources import resolve_path
from mm_feast.stores.quarantine import append_records


def read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def append_parquet(path: Path, existing: pd.DataFrame, new_rows: pd.DataFrame) -> None:
    """Rewrite the file with the new rows; written to a temp file first so a crash leaves the old one."""
    if new_rows.empty:
        return
    frame = new_rows if existing.empty else pd.concat([existing, new_rows], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def rewrite_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Replace the file with ``frame`` (also when it became empty): temp file first, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def store_rows(path: Path, kept: pd.DataFrame, new_rows: pd.DataFrame, pruned: bool) -> pd.DataFrame:
    """Write the source's offline rows (kept + new) if anything changed; returns them.

    Kept rows written before a column joined the row schema get its absent value, so every row
    of the file has every column (a NaN in a string column would fail the online write)."""
    if not kept.empty and not new_rows.empty:
        kept = kept.copy()
        for column in new_rows.columns.difference(kept.columns):
            kept[column] = [absent(ALL_COLUMNS.get(column, "string")) for _ in range(len(kept))]
    frame = new_rows if kept.empty else kept if new_rows.empty else pd.concat([kept, new_rows], ignore_index=True)
    if pruned or not new_rows.empty or not path.exists():
        rewrite_parquet(path, frame)
    return frame


def empty_items_path(sink: Path) -> Path:
    return sink.with_name(sink.stem + ".empty.json")


def read_empty_items(sink: Path) -> set[tuple[str, str, str]]:
    """(item_id, sha256, model_version) of the items that gave no row (an image with no text, a
    silent window): done all the same, so the next run does not make them again."""
    path = empty_items_path(sink)
    if not path.exists():
        return set()
    return {tuple(entry) for entry in json.loads(path.read_text())}  # type: ignore[misc]


def write_empty_items(sink: Path, items: set[tuple[str, str, str]]) -> None:
    path = empty_items_path(sink)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(items)))
    tmp.replace(path)


def record_run(repo_path: Optional[Path], summary: RunSummary) -> None:
    """Quarantine rows and the run summary go beside the data, so nothing is lost silently."""
    data_dir = resolve_path(repo_path, "data")
    append_records(repo_path, [asdict(q) for q in summary.quarantine])
    runs = data_dir / "runs" / f"{summary.source}.jsonl"
    runs.parent.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in asdict(summary).items() if k != "quarantine"}
    record["at"] = datetime.now(timezone.utc).isoformat()
    with open(runs, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
