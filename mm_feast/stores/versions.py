"""Which model version a view serves: the pins in the registry database, read by the online
store's writes, the compute engine and search. Switching and rolling back are in
``mm_feast.services.versions``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import and_, select

from mm_feast.stores.lineage import LineageDB, database_exists, lineage_target, served_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedVersion:
    view: str
    model_id: str
    model_revision: Optional[str]
    model_version: str
    switched_at: datetime


def pinned_version(db: LineageDB, view: str) -> Optional[ServedVersion]:
    """The explicitly served version of a view, or None when it follows its current encoder."""
    with db.engine.connect() as conn:
        row = conn.execute(
            select(served_table).where(and_(served_table.c.project == db.project, served_table.c.view == view))
        ).mappings().first()
    if row is None:
        return None
    return ServedVersion(row["view"], row["model_id"], row["model_revision"], row["model_version"], row["switched_at"])


# Search asks for the pin of every view on every query (~0.5 ms on SQLite): a short cache keeps
# that off the hot path; another process's switch shows within PIN_CACHE_S, this process's at once.
PIN_CACHE_S = 1.0
_PINS: dict[tuple[str, str, str], tuple[float, Optional[ServedVersion]]] = {}


def cached_pin(repo_path: Path, view: str, cached: bool = False) -> Optional[ServedVersion]:
    """The pin, without creating a lineage database where none exists yet."""
    target = lineage_target(Path(repo_path))
    key = (target.url, target.project, view)
    hit = _PINS.get(key)
    if cached and hit is not None and time.monotonic() - hit[0] < PIN_CACHE_S:
        return hit[1]
    pinned = pinned_version(LineageDB(target), view) if database_exists(target) else None
    _PINS[key] = (time.monotonic(), pinned)
    return pinned


def forget_pins() -> None:
    """Drop cached pins: this process just switched one."""
    _PINS.clear()


def keep_served_rows(config: Any, table: Any, data: list) -> list:
    """Online-write filter: with a pinned version, rows of any other version are not written.

    Called by the online store on every write batch, so ``feast materialize`` after an encoder
    change cannot silently replace the served space.
    """
    if not config.repo_path or not any(f.name == "model_version" for f in table.features):
        return data
    pinned = cached_pin(Path(config.repo_path), table.name)
    if pinned is None:
        return data
    kept = [row for row in data if row[1].get("model_version") is None or row[1]["model_version"].string_val == pinned.model_version]
    if len(kept) != len(data):
        logger.info(
            "%s serves model version %s: %d rows of other versions not written online (mm-feast versions serve to switch)",
            table.name, pinned.model_version, len(data) - len(kept),
        )
    return kept


def pinned_model_version(repo_path: Path, view_name: str) -> Optional[str]:
    """The model version pinned for ``view_name``, or None when it follows its current encoder."""
    pinned = cached_pin(Path(repo_path), view_name)
    return pinned.model_version if pinned is not None else None
