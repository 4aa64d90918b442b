"""Releasing quarantined items: the next ingest retries them, or (``--admit``) takes them despite
the expectations that failed; pushed rows are re-validated and written now. See
``mm_feast.stores.quarantine`` for the tables.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from mm_feast.stores.quarantine import Entry, find, push_payload_path
from mm_feast.stores.quarantine import release as release_records

logger = logging.getLogger(__name__)


def release(repo_path: Path, qids: Sequence[str], admit: bool = False, note: str = "", store: Any = None) -> list[dict[str, Any]]:
    """Release open entries: ingest retries them on its next run; pushed rows are written again
    now, through the push gate (so ``store`` is needed for them). Returns what happened to each."""
    done = []
    for qid in qids:
        entry = find(repo_path, qid)
        if entry.status != "open":
            from mm_feast.core.errors import InvalidArgument

            raise InvalidArgument(f"quarantine entry {entry.qid} ({entry.uri or entry.item_id}) is already {entry.status}")
        record = {
            "qid": entry.qid, "source": entry.source, "item_id": entry.item_id, "sha256": entry.sha256,
            "mode": "admit" if admit else "retry", "expectations": entry.expectations, "note": note,
            "at": datetime.now(timezone.utc).isoformat(),
        }
        if not release_records(repo_path, entry.source, entry.item_id, entry.sha256, record):
            from mm_feast.core.errors import InvalidArgument

            raise InvalidArgument(f"quarantine entry {entry.qid} ({entry.uri or entry.item_id}) was released meanwhile")
        outcome: dict[str, Any] = {"qid": entry.qid, "mode": record["mode"], "item_id": entry.item_id,
                                   "source": entry.source, "next": "retried by the next ingest run"}
        if entry.stage == "push_gate":
            outcome["next"] = _rewrite_pushed(repo_path, entry, admit, store)
        logger.info("released %s (%s, %s): %s", entry.qid, entry.item_id, record["mode"], outcome["next"])
        done.append(outcome)
    return done


def _rewrite_pushed(repo_path: Path, entry: Entry, admit: bool, store: Any) -> str:
    from mm_feast.services.push import QID_COLUMN, gated_write_to_online_store

    from mm_feast.core.errors import InvalidArgument, NotFound

    if store is None:
        raise InvalidArgument(f"releasing pushed row {entry.qid} writes it to the online store: pass a FeatureStore")
    path = push_payload_path(repo_path, entry.source)
    payload = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=[QID_COLUMN])
    rows = payload[payload[QID_COLUMN] == entry.qid].drop(columns=[QID_COLUMN]).tail(1)
    if rows.empty:
        raise NotFound(f"pushed row {entry.qid} has no stored payload in {path}")
    result = gated_write_to_online_store(
        store, entry.source, rows, repo_path=repo_path, admit={entry.qid: set(entry.expectations)} if admit else None
    )
    return f"written={result.written} quarantined={result.quarantined}"


# ---- CLI ------------------------------------------------------------------------------------


