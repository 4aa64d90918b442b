"""Stable identifiers: a segment's entity key and an embedding's lineage id."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def segment_id(item_id: str, position: str) -> str:
    """Entity key of one segment: ``<item_id>#<position>`` (e.g. ``vid_0#t=1.000``)."""
    return f"{item_id}#{position}"


def lineage_id(sha256: str, position: str, model_version: str, item_id: str) -> str:
    """Stable id of one embedding row: same item, same bytes, same position, same model -> same
    id. The item is part of it, so two files with the same bytes never share a lineage id."""
    return hashlib.sha256(f"{item_id}|{sha256}|{position}|{model_version}".encode()).hexdigest()[:20]


def config_hash(config: dict[str, Any]) -> tuple[str, str]:
    """(hash, canonical JSON) of a configuration: what lineage stores beside what it configured."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], text
